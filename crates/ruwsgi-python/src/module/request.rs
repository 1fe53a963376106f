//! Functions bound to the request in flight on the calling thread: `request_id`,
//! `connection_fd`, `disconnect`.
//!
//! Outside a request (another thread, the master) they raise `SystemError`, as uWSGI does
//! with threads.

use std::os::fd::AsRawFd;

use pyo3::exceptions::PySystemError;
use pyo3::prelude::*;

use crate::context::{self, RequestState};
use ruwsgi_plugin::RequestIo;

fn current<R>(f: impl FnOnce(&mut RequestState, &mut dyn RequestIo) -> R) -> PyResult<R> {
    context::with_request(f).map_err(|_| {
        PySystemError::new_err("you can call uwsgi api function only from the main callable")
    })
}

/// Requests this core completed before the current one.
#[pyfunction]
fn request_id() -> PyResult<u64> {
    current(|st, _| st.request_id)
}

/// The client socket's fd.
#[pyfunction]
fn connection_fd() -> PyResult<i32> {
    current(|_, io| io.connection_fd().as_raw_fd())
}

/// Close the client connection now.
#[pyfunction]
fn disconnect() -> PyResult<()> {
    current(|st, io| {
        io.disconnect();
        st.disconnected = true;
    })
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(request_id, m)?)?;
    m.add_function(wrap_pyfunction!(connection_fd, m)?)?;
    m.add_function(wrap_pyfunction!(disconnect, m)?)?;
    Ok(())
}
