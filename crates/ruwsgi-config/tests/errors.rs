//! Errors name the option, the value and where it came from.

use crate::util::{err, run, try_load, TempDir};

#[test]
fn invalid_values_with_locations() {
    let d = TempDir::new();
    let ini = d.write("app.ini", "[uwsgi]\nsocket = :1\nprocesses = abc\n");
    assert_eq!(
        err(&["--ini", &ini]),
        format!("invalid value 'abc' for option 'processes' (from {ini}:3): expected a number")
    );
    assert_eq!(
        err(&["-s", ":1", "--workers", "0"]),
        "invalid value '0' for option 'workers' (from command line argument 3): expected a \
         number from 1 to 65535"
    );
    assert!(err(&["--threads", "-1"]).contains("'-1' for option 'threads'"));
    assert!(err(&["--buffer-size", "70000"]).contains("from 1 to 65535 bytes"));
    assert!(err(&["--chmod-socket=999"]).contains("octal mode"));
    assert!(err(&["--env", "NOVALUE"]).contains("expected KEY=VALUE"));
    assert!(err(&["--mount", "/x"]).contains("expected MOUNTPOINT=APP"));
    assert!(err(&["--socket-timeout", "4s"]).contains("a number of seconds"));
    let e = match try_load(&["--listen", "x"], &[("UWSGI_LISTEN", "y")]) {
        Err(e) => e.to_string(),
        Ok(_) => panic!(),
    };
    assert_eq!(
        e,
        "invalid value 'y' for option 'listen' (from environment variable UWSGI_LISTEN): \
         expected a number"
    );
}

#[test]
fn not_yet_options() {
    let d = TempDir::new();
    let ini = d.write("app.ini", "[uwsgi]\n\n\n\n\n\nroute = ^/x break:404\n");
    assert_eq!(
        err(&["--ini", &ini]),
        format!("option 'route' (from {ini}:7) is a uWSGI option ruwsgi does not implement yet")
    );
    assert!(err(&["-t", "soon"]).starts_with("invalid value 'soon' for option 'harakiri'"));
    assert!(err(&["--gevent", "4"]).starts_with("option 'gevent'"));
    assert!(err(&["--set", "cheaper=2"]).starts_with("option 'cheaper'"));
    let e = match try_load(&[], &[("UWSGI_LOGGER", "file:/tmp/x")]) {
        Err(e) => e.to_string(),
        Ok(_) => panic!(),
    };
    assert!(e.contains("environment variable UWSGI_LOGGER"), "{e}");
}

/// uWSGI options outside ruwsgi's table are not taken for custom keys: an operator who wrote
/// `add-header` or `stats-push` must not lose it silently.
#[test]
fn every_uwsgi_option_name_is_refused_not_kept() {
    let d = TempDir::new();
    let ini = d.write("app.ini", "[uwsgi]\nsocket = :1\nadd-header = X-A: b\n");
    assert_eq!(
        err(&["--ini", &ini]),
        format!(
            "option 'add-header' (from {ini}:3) is a uWSGI option ruwsgi does not implement yet"
        )
    );
    assert!(err(&["--stats-push", "x"]).starts_with("option 'stats-push' (from command line"));
    assert!(err(&["--set", "stats-push=x"]).starts_with("option 'stats-push'"));
    // A key that is no uWSGI option is still a custom key.
    let ini = d.write(
        "ok.ini",
        "[uwsgi]\nsocket = :1\nadd-headers-of-my-app = 1\n",
    );
    let s = run(&["--ini", &ini]);
    assert!(s.opt.iter().any(|(k, _)| k == "add-headers-of-my-app"));
}

#[test]
fn unknown_command_line_options() {
    assert_eq!(
        err(&["--processes", "2", "--bogus"]),
        "unknown option '--bogus' (from command line argument 3)"
    );
    assert_eq!(
        err(&["-q"]),
        "unknown option '-q' (from command line argument 1)"
    );
    assert_eq!(
        err(&["--socket"]),
        "option 'socket' (from command line argument 1) requires a value"
    );
}

#[test]
fn unknown_command_line_options_stay_errors() {
    // A name that would be a fine custom key in a file is still no option on the command
    // line, and neither is a near miss.
    assert_eq!(
        err(&["--acc-custom", "1"]),
        "unknown option '--acc-custom' (from command line argument 1)"
    );
    assert_eq!(
        err(&["--http_socket", ":1"]),
        "unknown option '--http_socket' (from command line argument 1)"
    );
}

#[test]
fn near_miss_errors_point_at_the_key() {
    let d = TempDir::new();
    let ini = d.write("app.ini", "[uwsgi]\nsocket = :1\n\nharakri = 5\n");
    let e = match try_load(&["--ini", &ini], &[]) {
        Err(e) => e,
        Ok(_) => panic!(),
    };
    assert_eq!(
        e.source_location().map(ToString::to_string),
        Some(format!("{ini}:4"))
    );
    assert!(e.to_string().contains("did you mean 'harakiri'?"), "{e}");
}

#[test]
fn unknown_bare_argument_and_stdin() {
    assert!(err(&["whatever"]).starts_with("don't know what to do with argument 'whatever'"));
    assert!(err(&["-"]).contains("standard input"));
}

#[test]
fn unreadable_and_broken_files() {
    assert_eq!(
        err(&["--ini", "/nonexistent/x.ini"]),
        "cannot read config file '/nonexistent/x.ini': No such file or directory"
    );
    let d = TempDir::new();
    let j = d.write("bad.json", "{\"uwsgi\": {\"a\": 1,,}}");
    assert!(err(&["--json", &j]).starts_with(&format!("syntax error in config file {j}:1")));
    let y = d.write("bad.yaml", "uwsgi:\n  a: 1\n    b: 2\n");
    assert!(err(&["--yaml", &y]).starts_with(&format!("syntax error in config file {y}:3")));
}

#[test]
fn unknown_plugin() {
    assert_eq!(
        err(&["--plugins", "python3,php"]),
        "plugin 'php' (from command line argument 1) is not available: ruwsgi has python \
         (python, python3, python3NN), http and notfound built in"
    );
}

/// Async mode's options: a suspend engine needs `async`, and `async` does not mix with
/// `threads` > 1; both errors say why and point at the option.
#[test]
fn async_option_conflicts() {
    assert_eq!(
        err(&["--greenlet"]),
        "option 'greenlet' (from command line argument 1) needs async mode: add 'async N' \
         (N cores per worker)"
    );
    assert!(err(&["--ugreen"])
        .starts_with("option 'ugreen' (from command line argument 1) needs async mode"));
    let e = err(&["--async", "10", "--threads", "4"]);
    assert!(
        e.starts_with(
            "option 'async' (from command line argument 1) cannot be combined with 'threads 4'"
        ),
        "{e}"
    );
    let d = TempDir::new();
    let ini = d.write("a.ini", "[uwsgi]\ngreenlet = true\n");
    assert_eq!(
        err(&["--ini", &ini]),
        format!(
            "option 'greenlet' (from {ini}:2) needs async mode: add 'async N' (N cores per worker)"
        )
    );
}
