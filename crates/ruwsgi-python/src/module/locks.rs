//! User locks (§2.6): `lock`, `unlock`, `is_locked`, a binding over the host's user locks.
//!
//! `lock(n=0)` waits with the interpreter released, so the app's other threads run
//! meanwhile. A number outside 0..=N (`locks N`) raises `ValueError("Invalid lock number")`,
//! as uWSGI does. Locking a lock this thread already holds raises `RuntimeError` instead of
//! hanging the thread for good, and a lock recovered from a holder that died holding it is
//! logged. Spoolers may not use them (`ValueError("The spooler cannot lock/unlock
//! resources")`), as in uWSGI.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use ruwsgi_plugin::{ProcessRole, UserLockError, UserLocks};

use crate::runtime;

fn to_py(e: UserLockError) -> PyErr {
    match e {
        UserLockError::Invalid { .. } => PyValueError::new_err("Invalid lock number"),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

fn no_locks() -> PyErr {
    PyValueError::new_err("Invalid lock number")
}

/// Run `f` with the user locks, unless this process is a spooler.
fn with_locks<T>(f: impl FnOnce(&UserLocks) -> PyResult<T>) -> PyResult<T> {
    let host = runtime::host().ok_or_else(no_locks)?;
    if matches!(host.role(), ProcessRole::Spooler { .. }) {
        return Err(PyValueError::new_err(
            "The spooler cannot lock/unlock resources",
        ));
    }
    f(host.user_locks().ok_or_else(no_locks)?)
}

/// `lock(num=0)`: wait for user lock `num` and hold it until `unlock(num)`.
#[pyfunction]
#[pyo3(signature = (num = 0))]
fn lock(py: Python<'_>, num: i64) -> PyResult<()> {
    let died = with_locks(|locks| py.detach(|| locks.lock(num)).map_err(to_py))?;
    if died {
        runtime::log(&format!(
            "ruwsgi: user lock {num} recovered: its previous holder died holding it"
        ));
    }
    Ok(())
}

/// `unlock(num=0)`: release user lock `num` (nothing happens if this thread does not hold it).
#[pyfunction]
#[pyo3(signature = (num = 0))]
fn unlock(num: i64) -> PyResult<()> {
    with_locks(|locks| locks.unlock(num).map(|_| ()).map_err(to_py))
}

/// `is_locked(num=0)`: whether some thread holds user lock `num`.
#[pyfunction]
#[pyo3(signature = (num = 0))]
fn is_locked(num: i64) -> PyResult<bool> {
    with_locks(|locks| locks.is_locked(num).map_err(to_py))
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lock, m)?)?;
    m.add_function(wrap_pyfunction!(unlock, m)?)?;
    m.add_function(wrap_pyfunction!(is_locked, m)?)?;
    Ok(())
}
