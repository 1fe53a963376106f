//! Command line and environment.

use std::path::PathBuf;
use std::time::Duration;

use ruwsgi_config::{Command, Protocol, Status, OPTIONS};

use crate::util::{opts, run, run_env, try_load, TempDir};

#[test]
fn long_short_and_inline_forms() {
    let s = run(&[
        "--socket",
        ":3031",
        "--http-socket=0.0.0.0:8080",
        "-p",
        "4",
        "--threads=2",
        "-M",
        "-T",
        "-L",
        "-b",
        "8192",
        "-l",
        "50",
        "-z",
        "7",
        "-R",
        "1000",
        "-v",
        "32",
        "-w",
        "pkg.app:app",
        "-H",
        "/venv",
        "--vacuum",
        "--uid",
        "www",
    ]);
    assert_eq!(s.sockets.bind.len(), 2);
    assert_eq!(s.sockets.bind[0].protocol, Protocol::Uwsgi);
    assert_eq!(s.sockets.bind[0].address, ":3031");
    assert_eq!(s.sockets.bind[0].option, "socket");
    assert_eq!(s.sockets.bind[1].protocol, Protocol::Http);
    assert_eq!(s.sockets.bind[1].option, "http-socket");
    assert_eq!((s.processes.workers, s.processes.threads), (4, 2));
    assert!(s.processes.enable_threads && s.logging.disable_logging && s.processes.vacuum);
    assert_eq!(s.requests.buffer_size, 8192);
    assert_eq!(s.sockets.listen, 50);
    assert_eq!(s.requests.socket_timeout, Duration::from_secs(7));
    assert_eq!(s.processes.max_requests, 1000);
    assert_eq!(s.requests.max_vars, 32);
    assert_eq!(s.python.module.as_deref(), Some("pkg.app:app"));
    assert_eq!(s.python.home, Some(PathBuf::from("/venv")));
    assert_eq!(s.processes.uid.as_deref(), Some("www"));
}

#[test]
fn combined_short_flags_and_values() {
    let s = run(&["-MTp4", "-s:3031", "-C"]);
    assert_eq!(s.processes.workers, 4);
    assert_eq!(s.sockets.bind[0].address, ":3031");
    assert_eq!(s.sockets.chmod_socket, Some(0o666));
    assert_eq!(
        opts(&s),
        [
            ("master", None),
            ("enable-threads", None),
            ("processes", Some("4")),
            ("socket", Some(":3031")),
            ("chmod-socket", None)
        ]
    );
}

#[test]
fn chmod_socket_optional_value() {
    assert_eq!(
        run(&["--chmod-socket", "660", "-s", "/tmp/x.sock"])
            .sockets
            .chmod_socket,
        Some(0o660)
    );
    assert_eq!(
        run(&["--chmod-socket=0640"]).sockets.chmod_socket,
        Some(0o640)
    );
    assert_eq!(run(&["-C", "--master"]).sockets.chmod_socket, Some(0o666));
    assert_eq!(run(&[]).sockets.chmod_socket, None);
}

#[test]
fn http_variants_are_http_sockets() {
    let s = run(&[
        "--http",
        ":8080",
        "--http11-socket",
        ":8081",
        "--uwsgi-socket",
        ":3031",
    ]);
    let p: Vec<_> = s
        .sockets
        .bind
        .iter()
        .map(|s| (s.protocol, s.option))
        .collect();
    assert_eq!(
        p,
        [
            (Protocol::Http, "http"),
            (Protocol::Http, "http11-socket"),
            (Protocol::Uwsgi, "socket")
        ]
    );
}

#[test]
fn scalars_last_wins_lists_accumulate() {
    let s = run(&[
        "-p",
        "2",
        "--workers",
        "3",
        "--pythonpath",
        "/a",
        "--pp",
        "/b",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--mount",
        "/x=app.py",
        "--mount",
        "/y=pkg:app",
    ]);
    assert_eq!(s.processes.workers, 3);
    assert_eq!(
        s.python.pythonpath,
        [PathBuf::from("/a"), PathBuf::from("/b")]
    );
    assert_eq!(
        s.processes.env,
        [("A".into(), "1".into()), ("B".into(), "x=y".into())]
    );
    assert_eq!(
        s.python.mounts,
        [
            ("/x".into(), "app.py".into()),
            ("/y".into(), "pkg:app".into())
        ]
    );
}

#[test]
fn deferred_accept_is_on_unless_no_defer_accept() {
    assert!(run(&["--socket", ":3031"]).sockets.defer_accept);
    assert!(
        !run(&["--socket", ":3031", "--no-defer-accept"])
            .sockets
            .defer_accept
    );
    assert!(run(&["--no-defer-accept=false"]).sockets.defer_accept);
}

#[test]
fn booleans_with_values() {
    let s = run(&[
        "--vacuum=false",
        "--need-app=0",
        "--lazy-apps=yes",
        "--die-on-term=OFF",
        "--lazy=no",
    ]);
    assert!(
        !s.processes.vacuum
            && !s.processes.need_app
            && !s.processes.die_on_term
            && !s.processes.lazy_apps
    );
    let s = run(&[
        "--enable-threads=no",
        "--dynamic-apps",
        "--http-strict-host=1",
    ]);
    assert!(!s.processes.enable_threads && s.requests.dynamic_apps && s.requests.http_strict_host);
}

#[test]
fn wsgi_decides_file_or_module() {
    let s = run(&["--wsgi", "app.py"]);
    assert_eq!(s.python.wsgi_file, Some(PathBuf::from("app.py")));
    assert_eq!(s.python.module, None);
    let s = run(&["--wsgi", "myproj.wsgi:application"]);
    assert_eq!(s.python.module.as_deref(), Some("myproj.wsgi:application"));
    let s = run(&["--wsgi", "site.wsgi", "--file", "other.py"]);
    assert_eq!(s.python.wsgi_file, Some(PathBuf::from("other.py")));
}

#[test]
fn bare_arguments() {
    let s = run(&["app.py", "pkg.mod:application"]);
    assert_eq!(s.python.wsgi_file, Some(PathBuf::from("app.py")));
    assert_eq!(s.python.module.as_deref(), Some("pkg.mod:application"));
    assert_eq!(
        opts(&s),
        [
            ("wsgi-file", Some("app.py")),
            ("module", Some("pkg.mod:application"))
        ]
    );
    let d = TempDir::new();
    let ini = d.write("site.ini", "[uwsgi]\nprocesses = 5\n");
    let yml = d.write("site.yml", "uwsgi:\n  threads: 3\n");
    let s = run(&[&ini, &yml, "x.wsgi"]);
    assert_eq!((s.processes.workers, s.processes.threads), (5, 3));
    assert_eq!(s.python.wsgi_file, Some(PathBuf::from("x.wsgi")));
    assert_eq!(
        s.opt[0],
        ("ini".to_string(), ruwsgi_config::OptValue::Value(ini))
    );
    assert_eq!(s.opt[2].0, "yaml");
}

#[test]
fn defaults() {
    let s = run(&[]);
    assert!(s.sockets.bind.is_empty());
    assert_eq!(s.processes.workers, 1);
    assert!(s.processes.need_app && s.processes.enable_threads && s.processes.die_on_term);
    assert_eq!(s.processes.reload_mercy, Duration::from_secs(60));
    assert!(s.opt.is_empty());
}

#[test]
fn reload_mercy_follows_worker_mercy() {
    let s = run(&["--worker-reload-mercy", "5"]);
    assert_eq!(s.processes.reload_mercy, Duration::from_secs(5));
    let s = run(&["--worker-reload-mercy", "5", "--reload-mercy", "20"]);
    assert_eq!(s.processes.reload_mercy, Duration::from_secs(20));
}

#[test]
fn sizes_and_limits() {
    let s = run(&[
        "--post-buffering",
        "64k",
        "--limit-post",
        "10M",
        "-b",
        "32768",
    ]);
    assert_eq!(s.requests.post_buffering, 65536);
    assert_eq!(s.requests.limit_post, 10 << 20);
    assert_eq!(s.requests.buffer_size, 32768);
}

#[test]
fn plugins_are_accepted() {
    let s = run(&["--plugins", "python3,http", "--plugin", "python311"]);
    assert_eq!(s.opt.len(), 2);
}

#[test]
fn environment_options() {
    let s = run_env(
        &["--threads", "4"],
        &[
            ("UWSGI_PROCESSES", "3"),
            ("UWSGI_THREADS", "2"),
            ("UWSGI_HTTP_SOCKET", ":9090"),
            ("UWSGI_RELOADS", "4"),
            ("UWSGI_NOT_AN_OPTION", "1"),
            ("PATH", "/bin"),
        ],
    );
    assert_eq!(s.processes.workers, 3);
    assert_eq!(
        s.processes.threads, 4,
        "the command line comes after the environment"
    );
    assert_eq!(s.sockets.bind[0].address, ":9090");
    assert_eq!(
        opts(&s),
        [
            ("http-socket", Some(":9090")),
            ("processes", Some("3")),
            ("threads", Some("2")),
            ("threads", Some("4"))
        ]
    );
    assert_eq!(s.warnings.len(), 1);
    assert!(s.warnings[0].contains("UWSGI_NOT_AN_OPTION"));
}

#[test]
fn environment_can_load_an_ini() {
    let d = TempDir::new();
    let ini = d.write("e.ini", "[uwsgi]\nsocket = :1\n");
    let s = run_env(&[], &[("UWSGI_INI", &ini)]);
    assert_eq!(s.sockets.bind[0].address, ":1");
    assert_eq!(s.config_files, [PathBuf::from(&ini)]);
}

#[test]
fn help_version_show_config() {
    let Ok(Command::Help(h)) = try_load(&["-s", ":1", "--help", "--bogus"], &[]) else {
        panic!("help")
    };
    assert!(
        h.contains("loses at most its last 20 ms of request log lines"),
        "the logging section says what a SIGKILLed worker loses"
    );
    for d in OPTIONS.iter().filter(|d| d.status == Status::Supported) {
        assert!(
            h.contains(&format!("--{}", d.name)),
            "help lacks --{}",
            d.name
        );
        for a in d.aliases {
            assert!(h.contains(&format!("--{a}")), "help lacks --{a}");
        }
        if let Some(c) = d.short {
            assert!(
                h.contains(&format!("-{c}, --{}", d.name)),
                "help lacks -{c}"
            );
        }
    }
    assert!(h.contains("harakiri"));
    assert!(matches!(try_load(&["-h"], &[]), Ok(Command::Help(_))));
    let Ok(Command::Version(v)) = try_load(&["--version"], &[]) else {
        panic!("version")
    };
    assert!(v.contains(ruwsgi_config::VERSION));

    let d = TempDir::new();
    let ini = d.write("a.ini", "[uwsgi]\nprocesses = 2\nset-ph = my-key=x\n");
    let Ok(Command::ShowConfig(text)) =
        try_load(&["--show-config", "--ini", &ini, "-M", "-s", ":1"], &[])
    else {
        panic!("show-config")
    };
    let expected = format!(
        "[uwsgi]\n; ini = {ini}\nprocesses = 2\nset-placeholder = my-key=x\nmaster = true\n\
         socket = :1\n"
    );
    assert_eq!(text, expected);
}

fn show_config(args: &[&str], env: &[(&str, &str)]) -> String {
    match try_load(args, env) {
        Ok(Command::ShowConfig(text)) => text,
        other => panic!("expected ShowConfig, got {other:?}"),
    }
}

#[test]
fn show_config_prints_resolved_values_that_load_back() {
    let d = TempDir::new();
    let dir = d.path().to_string_lossy().into_owned();
    d.write("base.ini", "[uwsgi]\nthreads = 4\n");
    let ini = d.write(
        "site.ini",
        "[uwsgi]\nproject = shop\nbase = %d\nprocess = 3\nset = name=web\n\
         set-ph = port=8080\nset = processes=%(process)\nini = %(base)base.ini\n\
         http-socket = 127.0.0.1:%(port)\nchdir = %(base)%(project)\n\
         procname-prefix = %(name)-%n-\nenv = HOME_DIR=$(HOME_DIR)\nenv = PCT=100%%d\n\
         pidfile = /run/%(project).pid\nlog-format = %(addr) %(uri)\nacc-custom = %n-value\n\
         chmod-socket\n",
    );
    let args = ["--ini", ini.as_str(), "-M", "--vacuum", "--show-config"];
    let env = [("HOME_DIR", "/home/x")];
    let text = show_config(&args, &env);
    assert_eq!(
        text,
        format!(
            "[uwsgi]\n; ini = {ini}\nproject = shop\nbase = {dir}/\n\
             set-placeholder = process=3\nname = web\nset-placeholder = port=8080\n\
             processes = 3\n; ini = {dir}/base.ini\nthreads = 4\n\
             http-socket = 127.0.0.1:8080\nchdir = {dir}/shop\nprocname-prefix = web-site-\n\
             env = HOME_DIR=/home/x\nenv = PCT=100%%d\npidfile = /run/shop.pid\n\
             log-format = %(addr) %(uri)\nacc-custom = site-value\nchmod-socket\n\
             master = true\nvacuum = true\n"
        )
    );
    // Loaded back (from another directory, without the environment), it gives the same
    // settings, and the only `%(` left are the request-log variables.
    assert_eq!(text.matches("%(").count(), 2);
    let other = TempDir::new();
    let shown = other.write("shown.ini", &text);
    let a = run_env(&args[..4], &env);
    let b = run(&["--ini", &shown]);
    assert_eq!(a.processes.workers, 3);
    assert_eq!(
        (a.processes.workers, a.processes.threads, a.processes.vacuum),
        (b.processes.workers, b.processes.threads, b.processes.vacuum)
    );
    assert_eq!(a.sockets.bind, b.sockets.bind);
    assert_eq!(a.sockets.chmod_socket, b.sockets.chmod_socket);
    assert_eq!(a.processes.chdir, b.processes.chdir);
    assert_eq!(a.processes.env, b.processes.env);
    assert_eq!(a.processes.env[1].1, "PCT=100%d".split_once('=').unwrap().1);
    assert_eq!(a.processes.procname_prefix, b.processes.procname_prefix);
    assert_eq!(a.processes.pidfile, b.processes.pidfile);
    assert_eq!(a.logging.log_format, b.logging.log_format);
    let custom = |s: &ruwsgi_config::Settings| {
        opts(s)
            .into_iter()
            .filter(|(k, _)| *k == "acc-custom" || *k == "project" || *k == "name")
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect::<Vec<_>>()
    };
    assert_eq!(custom(&a), custom(&b));
    // Printing the loaded-back file again changes nothing but the first comment.
    let again = show_config(&["--ini", &shown, "--show-config"], &[]);
    assert_eq!(
        again.replacen(&format!("; ini = {shown}\n"), "", 1),
        text.replacen(&format!("; ini = {ini}\n"), "", 1).replacen(
            &format!("; ini = {dir}/base.ini\n"),
            "",
            1
        )
    );
}

#[test]
fn http_keepalive_is_accepted() {
    for args in [
        &["--http-keepalive"][..],
        &["--http-keepalive", "1"],
        &["--http-keepalive=1"],
        &["--http-keepalive", "5", "-p", "2"],
    ] {
        let s = run(args);
        assert!(s.warnings.is_empty(), "{args:?}: {:?}", s.warnings);
    }
    assert_eq!(
        run(&["--http-keepalive", "5", "-p", "2"]).processes.workers,
        2
    );
    // The next word is only taken when it is a number.
    let s = run(&["--http-keepalive", "app.py"]);
    assert_eq!(s.python.wsgi_file, Some(PathBuf::from("app.py")));
    assert_eq!(opts(&s)[0], ("http-keepalive", None));
    let d = TempDir::new();
    let ini = d.write(
        "k.ini",
        "[uwsgi]\nhttp-keepalive = 1\nhttp-keepalive\nhttp-keepalive = true\n",
    );
    let s = run(&["--ini", &ini]);
    assert!(s.warnings.is_empty() && s.notices.is_empty());
    let ini = d.write("off.ini", "[uwsgi]\nhttp-keepalive = 0\n");
    let s = run(&["--ini", &ini]);
    assert_eq!(s.warnings.len(), 1);
    assert!(
        s.warnings[0].starts_with(&format!(
            "'http-keepalive' (from {ini}:2) cannot be turned off"
        )),
        "{:?}",
        s.warnings
    );
    let s = run_env(&[], &[("UWSGI_HTTP_KEEPALIVE", "1")]);
    assert!(s.warnings.is_empty());
}

#[test]
fn double_dash_ends_options() {
    let s = run(&["-p", "2", "--", "app.py"]);
    assert_eq!(s.python.wsgi_file, Some(PathBuf::from("app.py")));
}

#[test]
fn mules_and_mule_add_mules_in_option_order() {
    use ruwsgi_config::MuleSpec;
    let s = run(&[
        "--mules",
        "2",
        "--mule",
        "worker.py",
        "--mule=",
        "--mule=false",
        "--mule=/srv/jobs/cron.py",
    ]);
    assert_eq!(
        s.processes.mules,
        [
            MuleSpec::Plain,
            MuleSpec::Plain,
            MuleSpec::Script(PathBuf::from("worker.py")),
            MuleSpec::Plain,
            MuleSpec::Script(PathBuf::from("/srv/jobs/cron.py")),
        ]
    );
    assert!(run(&[]).processes.mules.is_empty());
    assert_eq!(
        run(&["--mule", "jobs.main:run"]).processes.mules,
        [MuleSpec::Callable("jobs.main:run".into())]
    );
    let e = crate::util::err(&["--mule", "jobs.main:"]);
    assert!(e.contains("module:callable"), "{e}");
}

/// `async N` with its engines: `greenlet` and its alias `ugreen` select the stack-switching
/// engine, none means the generator pattern only; `cores()` follows `async`.
#[test]
fn async_options() {
    use ruwsgi_config::SuspendEngine;
    let s = run(&["--async", "100"]);
    assert_eq!(s.processes.async_cores, 100);
    assert_eq!(s.processes.suspend_engine, SuspendEngine::None);
    assert_eq!(s.processes.cores(), 100);
    assert!(s.processes.async_warn_queue_full);
    let s = run(&["--async", "8", "--greenlet"]);
    assert_eq!(s.processes.suspend_engine, SuspendEngine::Greenlet);
    let s = run(&[
        "--async",
        "8",
        "--ugreen",
        "--disable-async-warn-on-queue-full",
    ]);
    assert_eq!(s.processes.suspend_engine, SuspendEngine::Greenlet);
    assert!(!s.processes.async_warn_queue_full);
    let s = run(&["--threads", "3"]);
    assert_eq!((s.processes.async_cores, s.processes.cores()), (0, 3));
    assert_eq!(run(&[]).processes.cores(), 1);
}
