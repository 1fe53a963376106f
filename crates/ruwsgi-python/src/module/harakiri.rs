//! Harakiri from the app's side (§6.5): `set_user_harakiri`, and the handler that writes
//! every thread's stack to the log when the master is about to kill this process.

use pyo3::prelude::*;

use crate::runtime;

/// `set_user_harakiri(seconds)`: the master kills this process once `seconds` have passed
/// (0 clears it). In a worker the deadline belongs to the calling request core and ends
/// with its request; in a mule it stays until cleared. Returns `None`; where no deadline
/// can be set, the reason is logged (as uWSGI does).
#[pyfunction]
fn set_user_harakiri(seconds: i64) {
    let Some(host) = runtime::host() else {
        return;
    };
    if let Err(why) = host.set_user_harakiri(u64::try_from(seconds).unwrap_or(0)) {
        runtime::log(&format!("!!! {why} !!!"));
    }
}

/// Have `faulthandler` write the stack of every thread to the log (fd 2) on the signal the
/// master sends before a harakiri kill. Called once in each child after fork.
pub(crate) fn write_stacks_on_signal(py: Python<'_>) {
    let Some(signum) = runtime::host().and_then(|h| h.traceback_signal()) else {
        return;
    };
    let registered = py.import("faulthandler").and_then(|fh| {
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("file", 2)?;
        kwargs.set_item("all_threads", true)?;
        kwargs.set_item("chain", false)?;
        fh.call_method("register", (signum,), Some(&kwargs))
    });
    if let Err(e) = registered {
        runtime::log(&format!(
            "python: the stacks of a process killed by harakiri will not be logged: {e}"
        ));
    }
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_user_harakiri, m)?)?;
    Ok(())
}
