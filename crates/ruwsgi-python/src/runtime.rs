//! Process-wide state the `uwsgi` module functions reach: the [`Host`] and the log.
//!
//! Module functions are free functions called by the interpreter, so they cannot carry the
//! plugin; the plugin publishes its host here at `init`. Logging falls back to stderr before
//! that. Python tracebacks are formatted with the `traceback` module (imported only on the
//! error path) and written line by line to the server log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use pyo3::prelude::*;
use pyo3::types::PyList;
use ruwsgi_plugin::Host;

/// Written by `init` (rarely), read by every module function that needs the server.
static HOST: RwLock<Option<Arc<dyn Host>>> = RwLock::new(None);

/// Bumped by every [`set_host`]: what a thread derived from the host is good while this
/// stays the same.
static HOST_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Publish the host of this process.
pub(crate) fn set_host(host: Arc<dyn Host>) {
    let mut guard = HOST.write().unwrap_or_else(|e| e.into_inner());
    *guard = Some(host);
    HOST_GENERATION.fetch_add(1, Ordering::Release);
}

/// Changes whenever the host is replaced: what a thread derived from the host is good
/// while this stays the same.
pub(crate) fn host_generation() -> u64 {
    HOST_GENERATION.load(Ordering::Acquire)
}

/// The host of this process, once `init` ran.
pub(crate) fn host() -> Option<Arc<dyn Host>> {
    HOST.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Write one line to the server log (stderr before `init`).
pub(crate) fn log(line: &str) {
    match host() {
        Some(h) => h.log(line),
        None => eprintln!("{line}"),
    }
}

/// Log a Python exception with its full traceback, one log line per traceback line.
pub(crate) fn log_exception(py: Python<'_>, err: &PyErr) {
    match format_exception(py, err) {
        Ok(text) => {
            for line in text.lines() {
                log(line);
            }
        }
        Err(_) => {
            log(&format!("Python exception: {err}"));
        }
    }
}

fn format_exception(py: Python<'_>, err: &PyErr) -> PyResult<String> {
    let tb = py.import("traceback")?;
    let lines = tb.call_method1(
        "format_exception",
        (err.get_type(py), err.value(py), err.traceback(py)),
    )?;
    let lines = lines.cast_into::<PyList>()?;
    let mut out = String::new();
    for l in lines.iter() {
        out.push_str(&l.extract::<String>()?);
    }
    Ok(out)
}

/// Call a user hook (`post_fork_hook`, `atexit`, `after_req_hook`): exceptions are logged
/// with their traceback and swallowed, as uWSGI does.
pub(crate) fn call_hook(py: Python<'_>, name: &str, hook: &Bound<'_, PyAny>) {
    if let Err(e) = hook.call0() {
        log(&format!("exception in uwsgi.{name}:"));
        log_exception(py, &e);
    }
}
