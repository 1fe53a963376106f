//! Module attributes: version, identity, configuration (`uwsgi.opt`) and constants.
//!
//! `init_pymodule` sets what is known at import time; [`configure`] sets what comes from the
//! settings, and runs again if `init` is called again in the same process.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use ruwsgi_config::{OptValue, PluginView, UWSGI_API_VERSION};

/// `(base, major, minor, revision, custom)` from a version such as `2.1.0-ruwsgi`: numbers
/// split on `.` (missing ones are 0), the part after the first `-` as custom.
pub(crate) fn version_info_parts(version: &str) -> ([u64; 4], &str) {
    let (nums, custom) = version.split_once('-').unwrap_or((version, ""));
    let mut out = [0u64; 4];
    for (slot, part) in out.iter_mut().zip(nums.split('.')) {
        *slot = part.parse().unwrap_or(0);
    }
    (out, custom)
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("version", PyBytes::new(py, UWSGI_API_VERSION.as_bytes()))?;
    let ([a, b, c, d], custom) = version_info_parts(UWSGI_API_VERSION);
    let info = PyTuple::new(
        py,
        [
            a.into_pyobject(py)?.into_any(),
            b.into_pyobject(py)?.into_any(),
            c.into_pyobject(py)?.into_any(),
            d.into_pyobject(py)?.into_any(),
            PyBytes::new(py, custom.as_bytes()).into_any(),
        ],
    )?;
    m.add("version_info", info)?;
    m.add("SPOOL_OK", -2)?;
    m.add("SPOOL_RETRY", -1)?;
    m.add("SPOOL_IGNORE", 0)?;
    m.add("applications", py.None())?;
    m.add("unbit", py.None())?;
    m.add("loop", py.None())?;
    m.add("has_threads", 1)?;
    m.add("magic_table", PyDict::new(py))?;
    m.add("sockets", PyList::empty(py))?;
    m.add("numproc", 1)?;
    m.add("cores", 1)?;
    m.add("buffer_size", 4096)?;
    m.add("started_on", unix_now())?;
    m.add("opt", PyDict::new(py))?;
    m.add("is_a_reload", false)?;
    m.add("hostname", PyBytes::new(py, b""))?;
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn opt_value<'py>(py: Python<'py>, v: &OptValue) -> Bound<'py, PyAny> {
    match v {
        OptValue::Flag => pyo3::types::PyBool::new(py, true).to_owned().into_any(),
        OptValue::Value(s) => PyBytes::new(py, s.as_bytes()).into_any(),
    }
}

/// `uwsgi.opt`: str keys in order, bytes values or True, a repeated key becoming a list of
/// its values (2.1 semantics).
pub(crate) fn build_opt<'py>(
    py: Python<'py>,
    opt: &[(String, OptValue)],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in opt {
        let value = opt_value(py, v);
        match d.get_item(k)? {
            None => d.set_item(k, value)?,
            Some(prev) => {
                if let Ok(list) = prev.cast::<PyList>() {
                    list.append(value)?;
                } else {
                    d.set_item(k, PyList::new(py, [prev, value])?)?;
                }
            }
        }
    }
    Ok(d)
}

/// Set the attributes that come from the settings and the process.
pub(crate) fn configure(
    py: Python<'_>,
    m: &Bound<'_, PyModule>,
    server: PluginView<'_>,
    hostname: &[u8],
    socket_fds: &[i32],
) -> PyResult<()> {
    m.setattr("numproc", server.processes.workers)?;
    m.setattr("sockets", PyList::new(py, socket_fds)?)?;
    m.setattr("cores", server.processes.cores())?;
    m.setattr("buffer_size", server.requests.buffer_size)?;
    m.setattr("started_on", unix_now())?;
    m.setattr("opt", build_opt(py, server.opt)?)?;
    m.setattr("hostname", PyBytes::new(py, hostname))?;
    let reload = std::env::var("UWSGI_RELOADS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    m.setattr("is_a_reload", reload)?;
    if let Some(p) = &server.processes.pidfile {
        m.setattr("pidfile", PyBytes::new(py, p.to_string_lossy().as_bytes()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::version_info_parts;

    #[test]
    fn version_info_follows_uwsgi_rules() {
        assert_eq!(version_info_parts("2.0.30"), ([2, 0, 30, 0], ""));
        assert_eq!(version_info_parts("2.1-dev"), ([2, 1, 0, 0], "dev"));
        assert_eq!(version_info_parts("2.1.0-ruwsgi"), ([2, 1, 0, 0], "ruwsgi"));
    }
}
