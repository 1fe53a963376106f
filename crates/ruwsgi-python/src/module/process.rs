//! Process information and control: `masterpid`, `worker_id`, `workers`, `log`, `reload`...
//!
//! Everything goes through the process's [`Host`](ruwsgi_plugin::Host); before `init`
//! published one, identity functions answer 0 and control functions `None`.
//!
//! `workers()` lists every worker's apps with their counters, read from the shared scoreboard
//! where each worker publishes its apps (from its own process, so with `lazy-apps` the
//! addresses are each worker's own) and counts their requests. A worker that has not
//! published yet (or a host without a scoreboard) shows an empty tuple.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use ruwsgi_plugin::AppSnapshot;

use crate::runtime;

#[pyfunction]
fn masterpid() -> i32 {
    runtime::host().map_or(0, |h| h.masterpid())
}

#[pyfunction]
fn worker_id() -> u32 {
    runtime::host().map_or(0, |h| h.worker_id())
}

#[pyfunction]
fn mule_id() -> u32 {
    runtime::host().map_or(0, |h| h.mule_id())
}

#[pyfunction]
fn total_requests() -> u64 {
    runtime::host().map_or(0, |h| h.total_requests())
}

/// One worker's apps (§2.12): `id, modifier1, mountpoint, startup_time, interpreter,
/// callable, requests, exceptions, chdir`. `chdir` is empty: it is a per-app directory
/// only dynamic apps (`UWSGI_CHDIR`) have, and apps here come from the configuration.
fn apps_tuple<'py>(py: Python<'py>, apps: &[AppSnapshot]) -> PyResult<Bound<'py, PyTuple>> {
    let mut dicts = Vec::with_capacity(apps.len());
    for a in apps {
        let d = PyDict::new(py);
        d.set_item("id", a.id)?;
        d.set_item("modifier1", 0)?;
        d.set_item("mountpoint", PyBytes::new(py, &a.mountpoint))?;
        d.set_item("startup_time", a.startup_time)?;
        d.set_item("interpreter", a.interpreter)?;
        d.set_item("callable", a.callable)?;
        d.set_item("requests", a.requests)?;
        d.set_item("exceptions", a.exceptions)?;
        d.set_item("chdir", PyBytes::new(py, b""))?;
        dicts.push(d);
    }
    PyTuple::new(py, dicts)
}

/// One dict per worker (§2.12), `status` as bytes, `apps` as each worker published them.
#[pyfunction]
fn workers(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let infos = runtime::host().map(|h| h.workers()).unwrap_or_default();
    let mut dicts = Vec::with_capacity(infos.len());
    for w in infos {
        let d = PyDict::new(py);
        d.set_item("id", w.id)?;
        d.set_item("pid", w.pid)?;
        d.set_item("requests", w.requests)?;
        d.set_item("delta_requests", w.delta_requests)?;
        d.set_item("signals", 0)?;
        d.set_item("exceptions", w.exceptions)?;
        d.set_item("status", PyBytes::new(py, w.status.as_str().as_bytes()))?;
        d.set_item("rss", w.rss)?;
        d.set_item("vsz", w.vsz)?;
        d.set_item("running_time", w.running_time)?;
        d.set_item("last_spawn", w.last_spawn)?;
        d.set_item("respawn_count", w.respawn_count)?;
        d.set_item("tx", w.tx)?;
        d.set_item("avg_rt", w.avg_rt)?;
        d.set_item("apps", apps_tuple(py, &w.apps)?)?;
        dicts.push(d);
    }
    PyTuple::new(py, dicts)
}

/// Write one line to the server log; returns True.
#[pyfunction]
fn log(msg: &Bound<'_, PyAny>) -> PyResult<bool> {
    let text = if let Ok(b) = msg.cast::<PyBytes>() {
        String::from_utf8_lossy(b.as_bytes()).into_owned()
    } else {
        msg.str()?.to_cow()?.into_owned()
    };
    runtime::log(text.trim_end_matches('\n'));
    Ok(true)
}

#[pyfunction]
fn setprocname(name: &str) {
    if let Some(h) = runtime::host() {
        h.set_process_name(name);
    }
}

/// Ask the master for a graceful reload: True, or None if that failed.
#[pyfunction]
fn reload() -> Option<bool> {
    runtime::host().filter(|h| h.reload()).map(|_| true)
}

/// Ask the master to stop: True, or None if that failed.
#[pyfunction]
fn stop() -> Option<bool> {
    runtime::host().filter(|h| h.stop()).map(|_| true)
}

/// The current time in microseconds.
#[pyfunction]
fn micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `(rss, vsz)` of this process in bytes, from `/proc/self/status` (zeros if unreadable).
#[pyfunction]
fn mem() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmSize:"))
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(masterpid, m)?)?;
    m.add_function(wrap_pyfunction!(worker_id, m)?)?;
    m.add_function(wrap_pyfunction!(mule_id, m)?)?;
    m.add_function(wrap_pyfunction!(total_requests, m)?)?;
    m.add_function(wrap_pyfunction!(workers, m)?)?;
    m.add_function(wrap_pyfunction!(log, m)?)?;
    m.add_function(wrap_pyfunction!(setprocname, m)?)?;
    m.add_function(wrap_pyfunction!(reload, m)?)?;
    m.add_function(wrap_pyfunction!(stop, m)?)?;
    m.add_function(wrap_pyfunction!(micros, m)?)?;
    m.add_function(wrap_pyfunction!(mem, m)?)?;
    Ok(())
}
