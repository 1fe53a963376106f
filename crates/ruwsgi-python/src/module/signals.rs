//! The signal framework from Python (§2.4): `register_signal`, `signal`, `signal_registered`,
//! `signal_wait`, `signal_received`, and the timers, crons and file monitors that raise
//! signals (`add_timer`, `add_ms_timer`, `add_rb_timer`, `add_cron`, `add_file_monitor`).
//! A thin binding over the host's signal API; argument types, return values and error
//! messages are uWSGI's.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyIOError, PySystemError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use ruwsgi_plugin::signal::{CronSpec, RemoteError, SignalHandler};

use crate::runtime;

/// A Python callable registered as a signal handler: called as `handler(signum)`, its
/// return value ignored, an exception logged with its traceback.
struct PySignalHandler {
    callable: Py<PyAny>,
}

impl SignalHandler for PySignalHandler {
    fn handle(&self, signum: u8) -> Result<(), String> {
        Python::attach(|py| match self.callable.bind(py).call1((signum,)) {
            Ok(_) => Ok(()),
            Err(e) => {
                runtime::log_exception(py, &e);
                Err("the handler raised an exception".into())
            }
        })
    }
}

fn no_host() -> PyErr {
    PySystemError::new_err("the uwsgi module is not initialised")
}

/// `register_signal(num, target, handler)`: `None`, or `ValueError("unable to register
/// signal")` (no master, called in a mule or a spooler, a bad or too long target, or the
/// master registering a number twice; the reason is logged).
#[pyfunction]
fn register_signal(num: u8, target: &str, handler: Py<PyAny>) -> PyResult<()> {
    let host = runtime::host().ok_or_else(no_host)?;
    let handler: Arc<dyn SignalHandler> = Arc::new(PySignalHandler { callable: handler });
    host.register_signal(num, target, handler).map_err(|e| {
        runtime::log(&format!("cannot register signal {num}: {e}"));
        PyValueError::new_err("unable to register signal")
    })
}

/// `signal(num[, remote])`: route signal `num` through the master (always `None`; a
/// failure is only logged), or raise it on node `remote` (`host:port` or a socket path):
/// `ValueError` if the node rejected it, `IOError` if it could not be delivered.
#[pyfunction]
#[pyo3(signature = (num, remote=None))]
fn signal(py: Python<'_>, num: u8, remote: Option<&str>) -> PyResult<()> {
    let host = runtime::host().ok_or_else(no_host)?;
    match remote {
        None => {
            if let Err(e) = host.raise_signal(num) {
                runtime::log(&format!(
                    "could not deliver signal {num} to the master: {e}"
                ));
            }
            Ok(())
        }
        Some(node) => match py.detach(|| host.raise_remote_signal(node, num)) {
            Ok(()) => Ok(()),
            Err(RemoteError::Rejected { .. }) => Err(PyValueError::new_err(format!(
                "node {node} rejected signal {num}"
            ))),
            Err(e) => {
                runtime::log(&e.to_string());
                Err(PyIOError::new_err(format!(
                    "unable to deliver signal {num} to node {node}"
                )))
            }
        },
    }
}

/// `signal_registered(num)`: `True` if this process has a handler for `num`, else `None`.
#[pyfunction]
fn signal_registered(num: u8) -> Option<bool> {
    runtime::host()
        .is_some_and(|h| h.signal_registered(num))
        .then_some(true)
}

thread_local! {
    /// The last signal `signal_wait` read on this thread: (request generation, number).
    static RECEIVED: Cell<(u64, i32)> = const { Cell::new((0, 0)) };
}

fn current_generation() -> u64 {
    crate::context::with_request(|st, _| st.generation).unwrap_or(0)
}

/// `signal_wait([num])`: wait for a signal on this process's channels and run its handler;
/// with `num`, keep waiting (running the handlers of other signals) until `num` arrives.
/// Returns `b''`; `SystemError("error waiting for signal")` if the wait fails.
#[pyfunction]
#[pyo3(signature = (num=None))]
fn signal_wait(py: Python<'_>, num: Option<u8>) -> PyResult<Bound<'_, PyBytes>> {
    let host = runtime::host().ok_or_else(no_host)?;
    let generation = current_generation();
    RECEIVED.with(|r| r.set((generation, -1)));
    loop {
        let got = py.detach(|| host.signal_wait(None)).map_err(|e| {
            runtime::log(&format!("signal_wait: {e}"));
            PySystemError::new_err("error waiting for signal")
        })?;
        let Some(n) = got else {
            return Err(PySystemError::new_err("error waiting for signal"));
        };
        RECEIVED.with(|r| r.set((generation, i32::from(n))));
        host.dispatch_signal(n);
        if num.is_none_or(|want| want == n) {
            return Ok(PyBytes::new(py, b""));
        }
    }
}

/// `signal_received()`: the number the last `signal_wait` of this request read (`-1`
/// while it waits, `0` when it was not called in this request).
#[pyfunction]
fn signal_received() -> i32 {
    let (generation, n) = RECEIVED.with(Cell::get);
    if generation == current_generation() {
        n
    } else {
        0
    }
}

fn unable(what: &str) -> impl FnOnce(ruwsgi_plugin::signal::AddError) -> PyErr + '_ {
    move |e| {
        runtime::log(&format!("{what}: {e}"));
        PyValueError::new_err(format!("unable to add {what}"))
    }
}

/// `add_timer(num, seconds)`: the master raises `num` every `seconds`. `None`, or
/// `ValueError("unable to add timer")`.
#[pyfunction]
fn add_timer(num: u8, seconds: i64) -> PyResult<()> {
    let host = runtime::host().ok_or_else(no_host)?;
    let period = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    host.add_timer(num, period).map_err(unable("timer"))
}

/// `add_ms_timer(num, ms)`: as `add_timer`, with a period in milliseconds.
#[pyfunction]
fn add_ms_timer(num: u8, ms: i64) -> PyResult<()> {
    let host = runtime::host().ok_or_else(no_host)?;
    let period = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    host.add_timer(num, period).map_err(unable("timer"))
}

/// `add_rb_timer(num, seconds[, iterations=0])`: raise `num` every `seconds`, `iterations`
/// times (0: forever). `None`, or `ValueError("unable to add rb_timer")`.
#[pyfunction]
#[pyo3(signature = (num, seconds, iterations=0))]
fn add_rb_timer(num: u8, seconds: i64, iterations: i64) -> PyResult<()> {
    let host = runtime::host().ok_or_else(no_host)?;
    host.add_rb_timer(
        num,
        u64::try_from(seconds).unwrap_or(0),
        u64::try_from(iterations).unwrap_or(0),
    )
    .map_err(unable("rb_timer"))
}

/// `add_cron(num, minute, hour, day, month, weekday)`: raise `num` when the local time
/// matches (`-1`: any value, `-N`: every N). `True`, or `ValueError("unable to add cron")`.
#[pyfunction]
fn add_cron(num: u8, minute: i32, hour: i32, day: i32, month: i32, weekday: i32) -> PyResult<bool> {
    let host = runtime::host().ok_or_else(no_host)?;
    let spec = CronSpec {
        minute,
        hour,
        day,
        month,
        weekday,
    };
    host.add_cron(num, spec).map_err(unable("cron"))?;
    Ok(true)
}

/// `add_file_monitor(num, path)`: raise `num` whenever `path` (a file or a directory)
/// changes. `None`, or `ValueError("unable to add file monitor")`.
#[pyfunction]
fn add_file_monitor(num: u8, path: &str) -> PyResult<()> {
    let host = runtime::host().ok_or_else(no_host)?;
    host.add_file_monitor(num, std::path::Path::new(path))
        .map_err(unable("file monitor"))
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(register_signal, m)?)?;
    m.add_function(wrap_pyfunction!(signal, m)?)?;
    m.add_function(wrap_pyfunction!(signal_registered, m)?)?;
    m.add_function(wrap_pyfunction!(signal_wait, m)?)?;
    m.add_function(wrap_pyfunction!(signal_received, m)?)?;
    m.add_function(wrap_pyfunction!(add_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_ms_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_rb_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_cron, m)?)?;
    m.add_function(wrap_pyfunction!(add_file_monitor, m)?)?;
    Ok(())
}
