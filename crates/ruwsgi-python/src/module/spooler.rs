//! The spooler (§2.10): `spool`/`send_to_spooler`, `spooler_jobs`, `spooler_pid(s)`,
//! `set_spooler_frequency`, `spooler_get_task` (present only with a `spooler` or
//! `spooler-external` directory, as in uWSGI), and `spooler_dir`, `i_am_the_spooler`,
//! `parsefile` (always present). A binding over the host's spooler API.
//!
//! Types are uWSGI's on Python 3: the task dict has `bytes` keys and values (a `str` key or
//! value raises `ValueError`, so keyword calls fail as they do there); the spooler function
//! gets `bytes` keys and values plus `'spooler_task_name'` and, when the task has a body,
//! `'body'` (both `str` keys, `bytes` values). The write runs with the interpreter released.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};
use ruwsgi_plugin::spooler::task::parse_with;
use ruwsgi_plugin::{ProcessRole, SpoolerOutcome, Spoolers, Task, Vars};

use crate::runtime;

fn spool_error() -> PyErr {
    PyValueError::new_err("unable to spool job")
}

fn bytes_error() -> PyErr {
    PyValueError::new_err("spooler callable dictionary must contains only bytes")
}

/// A value of the task dict as bytes: `bytes`, or anything `bytes(obj)` converts except
/// `str` and `int` (as uWSGI's `PyObject_Bytes`).
fn value_bytes(v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if v.is_instance_of::<PyString>() || v.is_instance_of::<PyInt>() || v.is_none() {
        return Err(bytes_error());
    }
    let converted = v
        .py()
        .get_type::<PyBytes>()
        .call1((v,))
        .map_err(|_| bytes_error())?;
    Ok(converted
        .cast::<PyBytes>()
        .map_err(|_| bytes_error())?
        .as_bytes()
        .to_vec())
}

/// `spool(dict)` / `spool(**kwargs)`: the full path of the new task file (bytes).
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn spool<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let dict = match (args.len(), kwargs) {
        (0, Some(kw)) => kw.clone(),
        (0, None) => {
            return Err(PyValueError::new_err(
                "The argument of spooler callable must be a dictionary",
            ))
        }
        _ => args.get_item(0)?.cast_into::<PyDict>().map_err(|_| {
            PyValueError::new_err("The argument of spooler callable must be a dictionary")
        })?,
    };
    let mut vars = Vars::with_capacity(256, dict.len());
    let mut body = Vec::new();
    let mut has_body = false;
    for (k, v) in dict.iter() {
        let k = k.cast_into::<PyBytes>().map_err(|_| bytes_error())?;
        if k.as_bytes() == b"body" {
            body = value_bytes(&v)?;
            has_body = true;
            continue;
        }
        match v.cast::<PyBytes>() {
            Ok(b) => vars.push(k.as_bytes(), b.as_bytes()),
            Err(_) => vars.push(k.as_bytes(), &value_bytes(&v)?),
        }
    }
    if has_body {
        dict.del_item(PyBytes::new(py, b"body"))?;
    }
    let host = runtime::host().ok_or_else(spool_error)?;
    match py.detach(|| host.spool(&vars, &body)) {
        Ok(path) => Ok(PyBytes::new(py, path.as_os_str().as_bytes())),
        Err(e) => {
            runtime::log(&format!("ruwsgi: unable to spool job: {e}"));
            Err(spool_error())
        }
    }
}

/// `set_spooler_frequency(seconds)`: True.
#[pyfunction]
fn set_spooler_frequency(seconds: i64) -> bool {
    if let Some(h) = runtime::host() {
        h.set_spooler_frequency(u64::try_from(seconds).unwrap_or(0));
    }
    true
}

/// `spooler_jobs()`: the task files of the first spooler directory.
#[pyfunction]
fn spooler_jobs(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let jobs = runtime::host()
        .map(|h| h.spooler_jobs())
        .unwrap_or_default();
    PyList::new(
        py,
        jobs.iter()
            .map(|p| PyBytes::new(py, p.as_os_str().as_bytes())),
    )
}

/// `spooler_pid()`: the first spooler's pid, 0 if none.
#[pyfunction]
fn spooler_pid() -> i32 {
    runtime::host()
        .and_then(|h| h.spooler_pids().first().copied())
        .unwrap_or(0)
}

/// `spooler_pids()`: every spooler's pid.
#[pyfunction]
fn spooler_pids(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    PyList::new(
        py,
        runtime::host()
            .map(|h| h.spooler_pids())
            .unwrap_or_default(),
    )
}

fn path_arg(path: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    if let Ok(s) = path.cast::<PyString>() {
        return Ok(PathBuf::from(s.to_str()?));
    }
    if let Ok(b) = path.cast::<PyBytes>() {
        return Ok(PathBuf::from(std::ffi::OsStr::from_bytes(b.as_bytes())));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(
        "a path (str) is expected",
    ))
}

/// `spooler_get_task(path)`: the task as the spooler function would get it, or None
/// (missing, locked by a running spooler, not a spool file).
#[pyfunction]
fn spooler_get_task<'py>(
    py: Python<'py>,
    path: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let path = path_arg(path)?;
    match py.detach(|| Spoolers::get_task(&path)) {
        Some(task) => task_dict(py, &path, &task).map(Some),
        None => Ok(None),
    }
}

/// `spooler_dir()`: the directory of the calling spooler.
#[pyfunction]
fn spooler_dir(py: Python<'_>) -> PyResult<Bound<'_, PyBytes>> {
    runtime::host()
        .and_then(|h| h.spooler_dir())
        .map(|d| PyBytes::new(py, d.as_os_str().as_bytes()))
        .ok_or_else(|| PyValueError::new_err("This process is not a spooler"))
}

/// True in a spooler process, else None (present without spoolers too, as
/// `uwsgidecorators`' `@lock` calls it).
#[pyfunction]
fn i_am_the_spooler() -> Option<bool> {
    runtime::host()
        .filter(|h| matches!(h.role(), ProcessRole::Spooler { .. }))
        .map(|_| true)
}

/// `parsefile(path)`: the vars of a uwsgi packet file (modifier1 0 or 17, such as a spool
/// file) as a bytes → bytes dict, or None.
#[pyfunction]
fn parsefile<'py>(
    py: Python<'py>,
    path: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let path = path_arg(path)?;
    let Ok(bytes) = py.detach(|| std::fs::read(&path)) else {
        return Ok(None);
    };
    let Ok(task) = parse_with(&bytes, &[0, 17]) else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    for (k, v) in &task.vars {
        d.set_item(PyBytes::new(py, k), PyBytes::new(py, v))?;
    }
    Ok(Some(d))
}

/// The dict a spooler function gets for the task at `path`.
pub(crate) fn task_dict<'py>(
    py: Python<'py>,
    path: &Path,
    task: &Task,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in &task.vars {
        d.set_item(PyBytes::new(py, k), PyBytes::new(py, v))?;
    }
    d.set_item(
        "spooler_task_name",
        PyBytes::new(py, path.as_os_str().as_bytes()),
    )?;
    if let Some(body) = &task.body {
        d.set_item("body", PyBytes::new(py, body))?;
    }
    Ok(d)
}

/// Run the task at `path` with `uwsgi.spooler` (in a spooler process).
pub(crate) fn run_task(
    py: Python<'_>,
    module: &Bound<'_, PyModule>,
    path: &Path,
    task: &Task,
) -> SpoolerOutcome {
    let function = match module.getattr_opt("spooler") {
        Ok(Some(f)) if f.is_callable() => f,
        _ => {
            runtime::log(
                "unable to find the spooler function, have you loaded it into the spooler process ?",
            );
            return SpoolerOutcome::Ignore;
        }
    };
    let env = match task_dict(py, path, task) {
        Ok(d) => d,
        Err(e) => {
            runtime::log_exception(py, &e);
            return SpoolerOutcome::Error;
        }
    };
    match function.call1((env,)) {
        Ok(r) => match r.extract::<i64>() {
            Ok(-2) => SpoolerOutcome::Ok,
            Ok(0) => SpoolerOutcome::Ignore,
            Ok(_) => SpoolerOutcome::Retry,
            Err(_) => {
                runtime::log(&format!(
                    "spooler function returned {} for {}, not an int: kept for a retry",
                    r.get_type()
                        .name()
                        .map_or_else(|_| "?".to_string(), |n| n.to_string()),
                    path.display()
                ));
                SpoolerOutcome::Retry
            }
        },
        Err(e) => {
            runtime::log(&format!(
                "exception in the spooler function ({}):",
                path.display()
            ));
            runtime::log_exception(py, &e);
            SpoolerOutcome::Error
        }
    }
}

/// The functions present in every process.
pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(spooler_dir, m)?)?;
    m.add_function(wrap_pyfunction!(i_am_the_spooler, m)?)?;
    m.add_function(wrap_pyfunction!(parsefile, m)?)?;
    Ok(())
}

/// The spooler group and `uwsgi.spoolers`, when a spooler directory is configured.
pub(crate) fn add_if_configured(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let Some(host) = runtime::host() else {
        return Ok(());
    };
    let Some(spoolers) = host.spoolers() else {
        return Ok(());
    };
    let spool = wrap_pyfunction!(spool, m)?;
    m.add_function(spool.clone())?;
    m.add("send_to_spooler", spool)?;
    m.add_function(wrap_pyfunction!(set_spooler_frequency, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_jobs, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_pid, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_pids, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_get_task, m)?)?;
    let dirs = PyTuple::new(
        py,
        spoolers
            .dirs()
            .map(|d| PyBytes::new(py, d.as_os_str().as_bytes()))
            .collect::<Vec<_>>(),
    )?;
    m.add("spoolers", dirs)?;
    Ok(())
}
