//! `py-autoreload N`: a daemon thread in worker 1 compares, every N seconds, the
//! modification times of the files of the modules in `sys.modules` with the ones they had
//! when the apps were loaded; on a change it logs the module and file and asks the master
//! for a graceful reload of the instance (`uwsgi.reload()`, so `exit-on-reload` applies).
//!
//! Design decision: the watcher is a thread of one worker, never of the master (the master
//! stays single-threaded at fork). The baseline is taken where the apps are loaded: in the
//! master for preloaded apps, so that a worker respawned later still compares with the
//! code the instance runs, and in the worker itself with lazy apps. Only worker 1 watches:
//! one reload request is enough, and the files are the same for every worker.

use std::ffi::CString;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::runtime;

/// The watcher, in Python: it only reads `sys.modules` and `os.stat`, so it needs nothing
/// from the server but `uwsgi.log` and `uwsgi.reload`.
const SOURCE: &str = r#"
import os
import sys
import threading
import time


def _source_of(module):
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path:
        return None
    if path.endswith((".pyc", ".pyo")) and os.path.exists(path[:-1]):
        return path[:-1]
    return path


def _files(ignore):
    for name, module in list(sys.modules.items()):
        if module is None or name in ignore:
            continue
        path = _source_of(module)
        if path is None:
            continue
        try:
            yield name, path, os.stat(path).st_mtime_ns
        except OSError:
            continue


def snapshot(ignore):
    return {path: mtime for _name, path, mtime in _files(ignore)}


def _watch(interval, ignore, known):
    import uwsgi
    while True:
        time.sleep(interval)
        for name, path, mtime in _files(ignore):
            before = known.setdefault(path, mtime)
            if mtime == before:
                continue
            known[path] = mtime
            uwsgi.log("[py-autoreload] module %s changed (%s): reloading the instance"
                      % (name, path))
            if not uwsgi.reload():
                uwsgi.log("[py-autoreload] the reload request failed")
                break
            return


def start(interval, ignore, baseline):
    known = dict(baseline) if baseline else {}
    thread = threading.Thread(target=_watch, args=(interval, frozenset(ignore), known),
                              name="ruwsgi-py-autoreload", daemon=True)
    thread.start()
"#;

fn helper(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let code = CString::new(SOURCE)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("autoreload source: {e}")))?;
    PyModule::from_code(py, &code, c"<ruwsgi py-autoreload>", c"_ruwsgi_autoreload")
}

/// The modification times of the loaded modules' files, right after the apps loaded.
pub(crate) fn snapshot(py: Python<'_>, ignore: &[String]) -> Option<Py<PyAny>> {
    let taken = helper(py).and_then(|m| m.call_method1("snapshot", (ignore.to_vec(),)));
    match taken {
        Ok(s) => Some(s.unbind()),
        Err(e) => {
            runtime::log("py-autoreload: cannot list the loaded modules:");
            runtime::log_exception(py, &e);
            None
        }
    }
}

/// Start the watcher thread of this process, comparing with `baseline` (the snapshot taken
/// when the apps loaded; files not in it are compared with their first sighting).
pub(crate) fn start(
    py: Python<'_>,
    interval: Duration,
    ignore: &[String],
    baseline: Option<&Py<PyAny>>,
) {
    let started = helper(py).and_then(|m| {
        m.call_method1(
            "start",
            (
                interval.as_secs_f64(),
                ignore.to_vec(),
                baseline.map(|b| b.bind(py).clone()),
            ),
        )
    });
    match started {
        Ok(_) => runtime::log(&format!(
            "py-autoreload: watching the loaded modules every {} s",
            interval.as_secs()
        )),
        Err(e) => {
            runtime::log("py-autoreload: cannot start the watcher:");
            runtime::log_exception(py, &e);
        }
    }
}
