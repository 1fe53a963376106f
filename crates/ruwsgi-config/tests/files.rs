//! Config files: ini, YAML, JSON, TOML, sections, includes, `uwsgi.opt`.

use std::path::PathBuf;

use crate::util::{err, opts, run, TempDir};

#[test]
fn ini_bare_key_and_opt_list() {
    let d = TempDir::new();
    let ini = d.write(
        "app.ini",
        "[uwsgi]\n; comment\nsocket = 127.0.0.1:3031\nmaster\nmaster = true\nmy-custom = 42\n\
         processes = 2\nenv = N=%(my-custom)\n",
    );
    let s = run(&["--ini", &ini]);
    assert_eq!(
        opts(&s),
        [
            ("ini", Some(ini.as_str())),
            ("socket", Some("127.0.0.1:3031")),
            ("master", Some("")),
            ("master", Some("true")),
            ("my-custom", Some("42")),
            ("processes", Some("2")),
            ("env", Some("N=42")),
        ]
    );
    assert_eq!(s.config_files, [PathBuf::from(&ini)]);
    assert!(s.warnings.is_empty());
    assert_eq!(
        s.notices,
        [format!(
            "custom option 'my-custom' (from {ini}:6) kept for uwsgi.opt"
        )]
    );
}

#[test]
fn ini_is_read_where_it_appears() {
    let d = TempDir::new();
    let ini = d.write("a.ini", "[uwsgi]\nprocesses = 2\nthreads = 2\n");
    let s = run(&["-p", "1", "--threads", "8", "--ini", &ini, "-p", "3"]);
    assert_eq!((s.processes.workers, s.processes.threads), (3, 2));
}

#[test]
fn ini_sections() {
    let d = TempDir::new();
    let ini = d.write(
        "multi.ini",
        "[uwsgi]\nprocesses = 2\n[prod]\nprocesses = 8\nini = :uwsgi\n",
    );
    let s = run(&["--ini", &format!("{ini}:prod")]);
    assert_eq!(
        s.processes.workers, 2,
        "prod includes the uwsgi section after its own line"
    );
    assert_eq!(
        opts(&s)[..3],
        [
            ("ini", Some(format!("{ini}:prod").as_str())),
            ("processes", Some("8")),
            ("ini", Some(":uwsgi")),
        ]
    );
    let s = run(&["--ini", &format!("{ini}:nope")]);
    assert_eq!(s.warnings.len(), 1);
    assert!(s.warnings[0].contains("[nope]"), "{:?}", s.warnings);
}

#[test]
fn ini_includes_and_loops() {
    let d = TempDir::new();
    d.write("base.ini", "[uwsgi]\nthreads = 4\n");
    let top = d.write("top.ini", "[uwsgi]\nini = %dbase.ini\nprocesses = 3\n");
    let s = run(&["--ini", &top]);
    assert_eq!((s.processes.workers, s.processes.threads), (3, 4));
    assert_eq!(s.config_files.len(), 2);

    let a = d.write("a.ini", "[uwsgi]\nini = %db.ini\n");
    d.write("b.ini", "[uwsgi]\nini = %da.ini\n");
    let e = err(&["--ini", &a]);
    assert!(e.starts_with("config include loop: "), "{e}");
    assert!(
        e.contains("a.ini:uwsgi -> ") && e.ends_with("a.ini:uwsgi"),
        "{e}"
    );

    let mut text = String::new();
    for i in 0..12 {
        text.push_str(&format!("[s{i}]\nini = %p:s{}\n", i + 1));
    }
    let deep = d.write("deep.ini", &text);
    let e = err(&["--ini", &format!("{deep}:s0")]);
    assert!(e.contains("nested more than 10 deep"), "{e}");
}

#[test]
fn yaml_file() {
    let d = TempDir::new();
    let y = d.write(
        "app.yaml",
        "uwsgi:\n  socket: :3031\n  master: true\n  env:\n    - A=1\n    - B=2\n  \
         pythonpath: [/a, /b]\n  module: \"pkg.app:app\"\n",
    );
    let s = run(&["--yaml", &y]);
    assert_eq!(s.sockets.bind[0].address, ":3031");
    assert_eq!(s.processes.env.len(), 2);
    assert_eq!(s.python.pythonpath.len(), 2);
    assert_eq!(s.python.module.as_deref(), Some("pkg.app:app"));
    let s = run(&["--yml", &y]);
    assert_eq!(s.processes.env.len(), 2);
}

#[test]
fn custom_keys_are_kept_for_uwsgi_opt_and_noticed_once() {
    let d = TempDir::new();
    let ini = d.write(
        "app.ini",
        "[uwsgi]\nsocket = :1\nacc-custom = %n-value\nhost = db.local\nname = shop\n\
         secret = s3\nacc-custom = again\napp = x\n",
    );
    let s = run(&["--ini", &ini]);
    assert_eq!(
        opts(&s)[2..],
        [
            ("acc-custom", Some("app-value")),
            ("host", Some("db.local")),
            ("name", Some("shop")),
            ("secret", Some("s3")),
            ("acc-custom", Some("again")),
            ("app", Some("x")),
        ]
    );
    let notice = |key: &str, line: usize| {
        format!("custom option '{key}' (from {ini}:{line}) kept for uwsgi.opt")
    };
    assert_eq!(
        s.notices,
        [
            notice("acc-custom", 3),
            notice("host", 4),
            notice("name", 5),
            notice("secret", 6),
            notice("app", 8),
        ]
    );
    assert!(s.warnings.is_empty());
}

#[test]
fn near_misses_of_options_are_errors() {
    let d = TempDir::new();
    for (line, meant) in [
        ("harakri = 5", "harakiri"),
        ("process = 2", "processes"),
        ("http_socket = :8080", "http-socket"),
        ("Processes = 2", "processes"),
        ("procesess = 2", "processes"),
        ("wsgi_file = app.py", "wsgi-file"),
    ] {
        let ini = d.write("typo.ini", &format!("[uwsgi]\nsocket = :1\n{line}\n"));
        let key = line.split(" =").next().unwrap();
        assert_eq!(
            err(&["--ini", &ini]),
            format!(
                "unknown option '{key}' (from {ini}:3): did you mean '{meant}'? (a value for the \
                 app whose name is this close to an option's must be declared with \
                 `set-placeholder = {key}=VALUE`)"
            )
        );
    }
    // In YAML and JSON too.
    let y = d.write("typo.yaml", "uwsgi:\n  socket: :1\n  threds: 2\n");
    assert!(err(&["--yaml", &y]).starts_with(&format!(
        "unknown option 'threds' (from {y}:3): did you mean 'threads'?"
    )));
    let j = d.write("typo.json", r#"{"uwsgi": {"pidfle": "/x.pid"}}"#);
    assert!(err(&["--json", &j]).contains("did you mean 'pidfile'?"));
}

#[test]
fn near_miss_used_as_a_placeholder_is_custom() {
    let d = TempDir::new();
    let ini = d.write(
        "p.ini",
        "[uwsgi]\nprocess = web\nprocname-prefix = %(process)-\n",
    );
    let s = run(&["--ini", &ini]);
    assert_eq!(s.processes.procname_prefix.as_deref(), Some("web-"));
    assert_eq!(
        s.notices,
        [format!(
            "custom option 'process' (from {ini}:2) kept for uwsgi.opt"
        )]
    );
    // Used by an immediate option (a config path) counts as well.
    d.write("inc.ini", "[uwsgi]\nthreads = 3\n");
    let ini = d.write("q.ini", "[uwsgi]\nchdri = inc\nini = %d%(chdri).ini\n");
    assert_eq!(run(&["--ini", &ini]).processes.threads, 3);
}

#[test]
fn set_follows_the_same_rule() {
    let s = run(&["--set", "acc-custom=1", "-S", "threads=2"]);
    assert_eq!(s.processes.threads, 2);
    assert_eq!(
        s.notices,
        ["custom option 'acc-custom' (from command line argument 1) kept for uwsgi.opt"]
    );
    assert!(err(&["--set", "process=2"]).starts_with(
        "unknown option 'process' (from command line argument 1): did you mean 'processes'?"
    ));
    let d = TempDir::new();
    let ini = d.write("s.ini", "[uwsgi]\n\nset = harakri=5\n");
    assert!(err(&["--ini", &ini]).starts_with(&format!(
        "unknown option 'harakri' (from {ini}:3): did you mean 'harakiri'?"
    )));
    // set-placeholder declares any name, silently.
    let s = run(&["--set-placeholder", "process=2", "--set-ph", "Processes=3"]);
    assert_eq!(s.processes.workers, 1);
    assert!(s.notices.is_empty());
    assert_eq!(
        opts(&s)[1],
        ("process", Some("2")),
        "placeholders are in uwsgi.opt"
    );
}

#[test]
fn json_file() {
    let d = TempDir::new();
    let j = d.write(
        "app.json",
        r#"{"uwsgi": {"socket": [":1", ":2"], "processes": 4, "vacuum": true,
            "enable-threads": false, "x": null, "env": "X=%(x)"},
            "other": {"processes": 9}}"#,
    );
    let s = run(&["--json", &j]);
    assert_eq!(s.sockets.bind.len(), 2);
    assert_eq!(s.processes.workers, 4);
    assert!(s.processes.vacuum && !s.processes.enable_threads);
    assert_eq!(opts(&s)[6], ("x", Some("0")));
    assert_eq!(s.processes.env, [("X".to_string(), "0".to_string())]);
    assert_eq!(run(&["--js", &format!("{j}:other")]).processes.workers, 9);
}

#[test]
fn toml_file() {
    let d = TempDir::new();
    let t = d.write(
        "app.toml",
        "[uwsgi]\nhttp-socket = \":8080\"\nprocesses = 2\nlazy-apps = true\n\
         pythonpath = [\"/x\", \"/y\"]\n",
    );
    let s = run(&["--toml", &t]);
    assert_eq!(s.sockets.bind[0].protocol, ruwsgi_config::Protocol::Http);
    assert_eq!(s.processes.workers, 2);
    assert!(s.processes.lazy_apps);
    assert_eq!(s.python.pythonpath.len(), 2);
}

#[test]
fn strict_rejects_unknown_keys() {
    let d = TempDir::new();
    let ini = d.write(
        "s.ini",
        "[uwsgi]\nstrict = true\nprocesses = 2\nprocess = 3\n",
    );
    assert_eq!(
        err(&["--ini", &ini]),
        format!(
            "unknown option 'process' (from {ini}:4) in strict mode; did you mean 'processes'?"
        )
    );
    let ini = d.write(
        "c.ini",
        "[uwsgi]\nacc-custom = 1\nx = %(acc-custom)\nstrict\n",
    );
    assert_eq!(
        err(&["--ini", &ini]),
        format!(
            "unknown option 'acc-custom' (from {ini}:2) in strict mode; declare values for the \
             app with `set-placeholder = acc-custom=VALUE`"
        )
    );
    let ini = d.write("set.ini", "[uwsgi]\nstrict\nset = foo=bar\n");
    assert!(err(&["--ini", &ini]).starts_with(&format!(
        "unknown option 'foo' (from {ini}:3) in strict mode"
    )));
    assert!(err(&["--strict", "--set", "foo=bar"]).contains("in strict mode"));
    let ini = d.write(
        "ok.ini",
        "[uwsgi]\nstrict\nset-placeholder = foo=bar\nset = threads=2\nprocname-prefix = %(foo)\n",
    );
    let s = run(&["--ini", &ini]);
    assert_eq!(s.processes.procname_prefix.as_deref(), Some("bar"));
    assert_eq!(s.processes.threads, 2);
    assert!(s.notices.is_empty());
}
