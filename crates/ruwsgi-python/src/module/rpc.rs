//! RPC (§2.5): `register_rpc`, `call`, `rpc`, `rpc_list`, a binding over the host's RPC API.
//!
//! Types are uWSGI's on Python 3: function names and arguments are `bytes` (a `str` raises
//! `ValueError`), results are `bytes` or `None`, and `register_rpc` takes the name as `str`.
//! A registered callable gets one `bytes` argument per RPC argument and must return `bytes`;
//! anything else (`str`, `None`, an exception) means "no result" for the caller and is
//! logged. Remote calls run with the interpreter released, so other threads go on while a
//! node answers (within `socket-timeout`).

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use ruwsgi_plugin::rpc::MAX_ARGS;
use ruwsgi_plugin::RpcFunction;

use crate::runtime;

/// A Python callable registered as an RPC function.
struct PyRpcFunction {
    name: String,
    callable: Py<PyAny>,
}

impl PyRpcFunction {
    /// Call with Python arguments: the result as a `bytes` object, or why there is none.
    fn call_py<'py>(
        &self,
        py: Python<'py>,
        args: Bound<'py, PyTuple>,
    ) -> Result<Bound<'py, PyBytes>, String> {
        match self.callable.bind(py).call1(args) {
            Ok(r) => r.cast_into::<PyBytes>().map_err(|e| {
                let r = e.into_inner();
                format!(
                    "returned {} instead of bytes",
                    r.get_type()
                        .name()
                        .map_or_else(|_| "?".to_string(), |n| n.to_string())
                )
            }),
            Err(e) => {
                runtime::log_exception(py, &e);
                Err(format!("'{}' raised an exception", self.name))
            }
        }
    }
}

impl RpcFunction for PyRpcFunction {
    fn call(&self, args: &[&[u8]]) -> Result<Option<Vec<u8>>, String> {
        Python::attach(|py| {
            let args = PyTuple::new(py, args.iter().map(|a| PyBytes::new(py, a)))
                .map_err(|e| e.to_string())?;
            self.call_py(py, args).map(|b| Some(b.as_bytes().to_vec()))
        })
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

fn call_error() -> PyErr {
    PyValueError::new_err("unable to call rpc function")
}

/// The function name and arguments of a call, all `bytes`, borrowed from `items`.
fn byte_items<'a>(items: &'a [Bound<'a, PyAny>]) -> PyResult<Vec<&'a [u8]>> {
    if items.len() > MAX_ARGS + 1 {
        return Err(call_error());
    }
    items
        .iter()
        .map(|o| {
            o.cast::<PyBytes>()
                .map(|b| b.as_bytes())
                .map_err(|_| call_error())
        })
        .collect()
}

/// `register_rpc(name, func[, argc])`: True, or ValueError when the name is 256 bytes or
/// longer, the table is full, or this process may not register (mules, spoolers).
#[pyfunction]
#[pyo3(signature = (name, func, argc = 0))]
fn register_rpc(name: &str, func: &Bound<'_, PyAny>, argc: i64) -> PyResult<bool> {
    if !func.is_callable() {
        return Err(PyTypeError::new_err("RPC function must be callable"));
    }
    let Some(host) = runtime::host() else {
        return Err(PyValueError::new_err("unable to register rpc function"));
    };
    let function = Arc::new(PyRpcFunction {
        name: name.to_string(),
        callable: func.clone().unbind(),
    });
    // uWSGI reads argc as an unsigned char, wrapping.
    match host.register_rpc(name.as_bytes(), argc as u8, function) {
        Ok(()) => Ok(true),
        Err(e) => {
            runtime::log(&format!(
                "ruwsgi: cannot register RPC function '{name}': {e}"
            ));
            Err(PyValueError::new_err("unable to register rpc function"))
        }
    }
}

/// `call(func, *args)`: the local function's result, or None.
#[pyfunction]
#[pyo3(signature = (*args))]
fn call<'py>(py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Option<Bound<'py, PyBytes>>> {
    local_call(py, args, 0)
}

/// A call in this process; `args[skip]` is the function name, the rest its arguments. A
/// Python function gets the caller's `bytes` objects as they are and its result is returned
/// as it is; other functions (registered from Rust) go through the host's API.
fn local_call<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
    skip: usize,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let items: Vec<Bound<'py, PyAny>> = args.iter().skip(skip).collect();
    let items = byte_items(&items)?;
    let (name, rest) = items.split_first().ok_or_else(call_error)?;
    let Some(host) = runtime::host() else {
        return Ok(None);
    };
    let function = host.rpc().and_then(|r| r.registry().get(name));
    if let Some(f) = function.as_ref() {
        if let Some(pyf) = f.as_any().and_then(|a| a.downcast_ref::<PyRpcFunction>()) {
            let pyargs = args.get_slice(skip + 1, args.len());
            return Ok(match pyf.call_py(py, pyargs) {
                Ok(b) if !b.as_bytes().is_empty() => Some(b),
                Ok(_) => None,
                Err(why) => {
                    runtime::log(&format!(
                        "ruwsgi: RPC function '{}' failed: {why}",
                        pyf.name
                    ));
                    None
                }
            });
        }
    }
    Ok(host.rpc_call(name, rest).map(|r| PyBytes::new(py, &r)))
}

/// The node argument of `rpc`: None (local), `str`, or `bytes` read as Latin-1.
fn node_text(node: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if node.is_none() {
        return Ok(None);
    }
    if let Ok(s) = node.cast::<PyString>() {
        return Ok(Some(s.to_str()?.to_string()));
    }
    if let Ok(b) = node.cast::<PyBytes>() {
        return Ok(Some(b.as_bytes().iter().map(|&c| c as char).collect()));
    }
    Err(call_error())
}

/// `rpc(node, func, *args)`: call `func` on `node` (`host:port`, a unix socket path, or
/// None for this process): its result, or None.
#[pyfunction]
#[pyo3(signature = (*args))]
fn rpc<'py>(py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Option<Bound<'py, PyBytes>>> {
    if args.len() < 2 {
        return Err(call_error());
    }
    let node = match node_text(&args.get_item(0)?)? {
        Some(n) if !n.is_empty() => n,
        _ => return local_call(py, args, 1),
    };
    let items: Vec<Bound<'py, PyAny>> = args.iter().skip(1).collect();
    let items = byte_items(&items)?;
    let (name, rest) = items.split_first().ok_or_else(call_error)?;
    let Some(host) = runtime::host() else {
        return Ok(None);
    };
    // An async core waiting for the node parks instead (and needs the interpreter).
    let result = if crate::context::in_core_greenlet() {
        host.rpc_remote(&node, name, rest)
    } else {
        py.detach(|| host.rpc_remote(&node, name, rest))
    };
    Ok(result.map(|r| PyBytes::new(py, &r)))
}

/// `rpc_list()`: the names registered in this process, as a tuple of bytes.
#[pyfunction]
fn rpc_list(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let names = runtime::host().map(|h| h.rpc_list()).unwrap_or_default();
    PyTuple::new(py, names.iter().map(|n| PyBytes::new(py, n)))
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(register_rpc, m)?)?;
    m.add_function(wrap_pyfunction!(call, m)?)?;
    m.add_function(wrap_pyfunction!(rpc, m)?)?;
    m.add_function(wrap_pyfunction!(rpc_list, m)?)?;
    Ok(())
}
