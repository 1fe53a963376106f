//! Mules and farms from Python (§2.11): `mule_msg`, `mule_get_msg`, `farm_msg`,
//! `farm_get_msg`, `in_farm`, `mule_file`, `mule_msg_recv_size`, `install_mule_msg_hook`.
//! A thin binding over the host's mule queues; types and errors are uWSGI's, with two
//! deliberate differences: `mule_msg(msg, N)` with no mule N raises `ValueError("invalid
//! mule")` instead of writing nowhere, and `mule_get_msg(signals=True)` (the default) runs
//! the mule's signal handlers while it waits, as the argument's name says.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString};
use ruwsgi_plugin::signal::{MuleMsgError, MuleTarget, Received};

use crate::runtime;

/// Hooks added with `install_mule_msg_hook`, called after `uwsgi.mule_msg_hook`.
static EXTRA_HOOKS: Mutex<Vec<Py<PyAny>>> = Mutex::new(Vec::new());

/// The hooks of `install_mule_msg_hook`, in installation order.
pub(crate) fn extra_hooks(py: Python<'_>) -> Vec<Bound<'_, PyAny>> {
    EXTRA_HOOKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|h| h.bind(py).clone())
        .collect()
}

/// A message argument: `bytes` or `str` (UTF-8), as uWSGI's `s#` takes.
pub(crate) fn message_bytes(msg: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = msg.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = msg.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    Err(pyo3::exceptions::PyTypeError::new_err(
        "a message must be bytes or str",
    ))
}

/// `mule_msg(msg[, target])`: `True` once queued, `False` if the queue refused it (full or
/// too long). `target`: omitted, `None` or `0` for any mule, an int for that mule, bytes
/// for a farm; `ValueError` for anything else, an unknown mule or farm, or no mules.
#[pyfunction]
#[pyo3(signature = (msg, target=None))]
fn mule_msg(msg: &Bound<'_, PyAny>, target: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    let host = runtime::host().ok_or_else(|| PyValueError::new_err("no mule configured"))?;
    let signals = host
        .signals()
        .ok_or_else(|| PyValueError::new_err("no mule configured"))?;
    let msg = message_bytes(msg)?;
    let farm_name;
    let target = match target {
        None => MuleTarget::Any,
        Some(t) if t.is_none() => MuleTarget::Any,
        Some(t) if t.is_instance_of::<PyInt>() => match t.extract::<i64>()? {
            0 => MuleTarget::Any,
            n => MuleTarget::Mule(
                u32::try_from(n).map_err(|_| PyValueError::new_err("invalid mule"))?,
            ),
        },
        Some(t) if t.is_instance_of::<PyBytes>() => {
            farm_name = String::from_utf8_lossy(t.cast::<PyBytes>()?.as_bytes()).into_owned();
            MuleTarget::Farm(&farm_name)
        }
        Some(_) => return Err(PyValueError::new_err("invalid mule")),
    };
    match signals.sockets().mule_msg(target, &msg) {
        Ok(()) => Ok(true),
        Err(MuleMsgError::NoMules) => Err(PyValueError::new_err("no mule configured")),
        Err(MuleMsgError::InvalidMule(_)) => Err(PyValueError::new_err("invalid mule")),
        Err(MuleMsgError::UnknownFarm) => Err(PyValueError::new_err("unknown farm")),
        Err(MuleMsgError::Send(e)) => {
            runtime::log(&format!("*** MULE MSG QUEUE IS FULL: {e} ***"));
            Ok(false)
        }
        Err(e) => {
            runtime::log(&format!("mule_msg: {e}"));
            Ok(false)
        }
    }
}

/// Wait in this mule for a message (running signal handlers meanwhile when `signals`).
fn receive<'py>(
    py: Python<'py>,
    farms: bool,
    signals: bool,
    timeout: Option<Duration>,
    max: usize,
    only_farms: bool,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let host = runtime::host().ok_or_else(|| PyValueError::new_err("no mule configured"))?;
    let id = host.mule_id();
    let Some(framework) = host.signals().filter(|_| id > 0) else {
        let what = if only_farms { "farm" } else { "mule" };
        return Err(PyValueError::new_err(format!(
            "you can receive {what} messages only in a mule !!!"
        )));
    };
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let inbox = framework.inbox(id);
        let got = py.detach(|| {
            if only_farms {
                inbox.wait_farms(signals, left, max)
            } else {
                inbox.wait(farms, signals, left, max)
            }
        });
        match got {
            Ok(Received::Message(m)) => return Ok(Some(PyBytes::new(py, &m))),
            Ok(Received::Timeout) => return Ok(Some(PyBytes::new(py, b""))),
            Ok(Received::Signal(n)) => {
                host.dispatch_signal(n);
            }
            Ok(Received::MasterGone | Received::Stop) => {
                runtime::log(&format!("mule {id}: the master is gone"));
                return Ok(None);
            }
            Err(e) => {
                runtime::log(&format!("mule {id}: cannot receive messages: {e}"));
                return Ok(None);
            }
        }
    }
}

/// `mule_get_msg(signals=True, farms=True, buffer_size=65536, timeout=-1)`: the next
/// message for this mule (its own queue, the shared one, its farms' with `farms`) as
/// bytes, cut to `buffer_size`; `b''` when `timeout` seconds pass (-1: wait forever);
/// `None` on error. Only in mules (`ValueError` elsewhere).
#[pyfunction]
#[pyo3(signature = (signals=None, farms=None, buffer_size=65536, timeout=-1))]
fn mule_get_msg<'py>(
    py: Python<'py>,
    signals: Option<&Bound<'py, PyAny>>,
    farms: Option<&Bound<'py, PyAny>>,
    buffer_size: i64,
    timeout: i64,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let truthy = |v: Option<&Bound<'py, PyAny>>| v.is_none_or(|v| v.is_truthy().unwrap_or(true));
    let timeout = u64::try_from(timeout).ok().map(Duration::from_secs);
    let max = usize::try_from(buffer_size).unwrap_or(0).max(1);
    receive(py, truthy(farms), truthy(signals), timeout, max, false)
}

/// `farm_msg(farm, msg)`: queue `msg` for any mule of `farm`. Always `None` (an unknown
/// farm or a full queue is ignored, as uWSGI does; a full queue is logged).
#[pyfunction]
fn farm_msg(farm: &str, msg: &Bound<'_, PyAny>) -> PyResult<()> {
    let msg = message_bytes(msg)?;
    let sent = runtime::host().and_then(|h| {
        h.signals()
            .map(|s| s.sockets().mule_msg(MuleTarget::Farm(farm), &msg))
    });
    if let Some(Err(MuleMsgError::Send(e))) = sent {
        runtime::log(&format!("*** FARM MSG QUEUE IS FULL: {e} ***"));
    }
    Ok(())
}

/// `farm_get_msg()`: the next message of any farm this mule is in (waits forever; forever
/// too when it is in none). Only in mules.
#[pyfunction]
fn farm_get_msg(py: Python<'_>) -> PyResult<Option<Bound<'_, PyBytes>>> {
    let max = runtime::host()
        .and_then(|h| h.signals().map(|s| s.mule_msg_recv_size()))
        .unwrap_or(65536);
    receive(py, true, true, None, max, true)
}

/// `in_farm([name])`: `True` if this mule is in farm `name` (or in any farm), else `None`.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn in_farm(name: Option<&str>) -> Option<bool> {
    let host = runtime::host()?;
    let id = host.mule_id();
    let signals = host.signals()?;
    let mut farms = signals.sockets().farms_of(id);
    let found = match name {
        Some(name) => farms.any(|f| f.name == name),
        None => farms.next().is_some(),
    };
    (id > 0 && found).then_some(true)
}

/// `mule_msg_recv_size()`: the longest message a mule reads (`mule-msg-recv-size`).
#[pyfunction]
fn mule_msg_recv_size() -> usize {
    runtime::host()
        .and_then(|h| h.signals().map(|s| s.mule_msg_recv_size()))
        .unwrap_or(65536)
}

/// `mule_file([id])`: what `mule = ...` gave mule `id` (this mule by default) as bytes, or
/// `None` (a plain mule, or not a mule).
#[pyfunction]
#[pyo3(signature = (id=None))]
fn mule_file(py: Python<'_>, id: Option<i64>) -> Option<Bound<'_, PyBytes>> {
    let host = runtime::host()?;
    let id = match id {
        Some(id) => u32::try_from(id).ok()?,
        None => host.mule_id(),
    };
    host.mule_file(id).map(|f| PyBytes::new(py, f.as_bytes()))
}

/// `install_mule_msg_hook(func)`: call `func(message)` for each message a plain mule
/// receives, after `uwsgi.mule_msg_hook`.
#[pyfunction]
fn install_mule_msg_hook(func: Py<PyAny>) {
    EXTRA_HOOKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(func);
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mule_msg, m)?)?;
    m.add_function(wrap_pyfunction!(mule_get_msg, m)?)?;
    m.add_function(wrap_pyfunction!(farm_msg, m)?)?;
    m.add_function(wrap_pyfunction!(farm_get_msg, m)?)?;
    m.add_function(wrap_pyfunction!(in_farm, m)?)?;
    m.add_function(wrap_pyfunction!(mule_msg_recv_size, m)?)?;
    m.add_function(wrap_pyfunction!(mule_file, m)?)?;
    m.add_function(wrap_pyfunction!(install_mule_msg_hook, m)?)?;
    Ok(())
}
