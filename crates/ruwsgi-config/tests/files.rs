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
fn unused_unknown_key_is_a_typo_error() {
    let d = TempDir::new();
    let ini = d.write("typo.ini", "[uwsgi]\nsocket = :1\nprocesess = 2\n");
    let err = err(&["--ini", &ini]);
    assert!(err.contains("unknown option 'procesess'"), "{err}");
    assert!(err.contains("typo.ini:3"), "{err}");
    assert!(err.contains("did you mean 'processes'?"), "{err}");
    assert!(err.contains("set-placeholder = procesess=VALUE"), "{err}");
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
    let e = err(&["--ini", &ini]);
    assert_eq!(
        e,
        format!("unknown option 'process' (from {ini}:4) in strict mode")
    );
    let ini = d.write("ok.ini", "[uwsgi]\nstrict\nset = foo=bar\n");
    run(&["--ini", &ini]);
}
