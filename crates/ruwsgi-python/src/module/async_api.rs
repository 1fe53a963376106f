//! The async and networking API (§2.13): `suspend`, `wait_fd_read`, `wait_fd_write`,
//! `async_sleep`, `ready_fd`, `async_connect`, `connect`, `is_connected`, `send`, `recv`,
//! `close`.
//!
//! The waits only *record* what the running async core waits for and return `b''`; the
//! core waits when it suspends (`uwsgi.suspend()` with greenlet) or yields that `b''` from
//! a generator response. Outside async mode `wait_fd_read`/`wait_fd_write` raise
//! `IOError` and `async_sleep` does nothing, both logging `ASYNC call without async mode
//! !!!`, as uWSGI does.

use std::os::fd::{IntoRawFd, RawFd};
use std::time::Duration;

use pyo3::exceptions::{PyIOError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use ruwsgi_plugin::Interest;
use ruwsgi_sys::rawfd;

use crate::async_core::suspend_core;
use crate::context;
use crate::runtime;

/// Most bytes one `recv` returns.
const RECV_MAX: usize = 4096;

fn not_async() {
    runtime::log("ASYNC call without async mode !!!");
}

/// Record a wait on `fd` for the running core (`timeout` seconds, 0 = none).
fn record_wait(
    py: Python<'_>,
    fd: i32,
    timeout: i64,
    interest: Interest,
) -> PyResult<Bound<'_, PyBytes>> {
    let recorded = (fd >= 0)
        .then(|| {
            context::with_current_core(|_, slot| {
                slot.park.fds.push((fd, interest));
                if timeout > 0 {
                    slot.park.timeout = Some(Duration::from_secs(timeout as u64));
                }
            })
        })
        .flatten();
    if recorded.is_none() {
        if fd >= 0 {
            not_async();
        }
        return Err(PyIOError::new_err(format!(
            "unable to fd {fd} to the event queue"
        )));
    }
    Ok(PyBytes::new(py, b""))
}

/// `suspend()`: give the core back to the loop (with greenlet); it resumes once what it
/// waits for happens, or on the next pass if it waits for nothing. A no-op without a
/// suspend engine.
#[pyfunction]
fn suspend(py: Python<'_>) -> PyResult<bool> {
    suspend_core(py)?;
    Ok(true)
}

/// `wait_fd_read(fd, timeout=0)`: the running core waits for `fd` to be readable.
#[pyfunction]
#[pyo3(signature = (fd, timeout = 0))]
fn wait_fd_read(py: Python<'_>, fd: i32, timeout: i64) -> PyResult<Bound<'_, PyBytes>> {
    record_wait(py, fd, timeout, Interest::Read)
}

/// `wait_fd_write(fd, timeout=0)`: the running core waits for `fd` to be writable.
#[pyfunction]
#[pyo3(signature = (fd, timeout = 0))]
fn wait_fd_write(py: Python<'_>, fd: i32, timeout: i64) -> PyResult<Bound<'_, PyBytes>> {
    record_wait(py, fd, timeout, Interest::Write)
}

/// `async_sleep(seconds)`: the running core waits that long (fractions honoured to the
/// millisecond; 0 or less does nothing). Returns `b''` to yield or follow with `suspend()`.
#[pyfunction]
fn async_sleep(py: Python<'_>, seconds: f64) -> Bound<'_, PyBytes> {
    if let Ok(d) = Duration::try_from_secs_f64(seconds) {
        if !d.is_zero()
            && context::with_current_core(|_, slot| slot.park.timeout = Some(d)).is_none()
        {
            not_async();
        }
    }
    PyBytes::new(py, b"")
}

/// `ready_fd()`: the descriptor that woke the running core, or -1 (timeout, plain yield,
/// or not in async mode).
#[pyfunction]
fn ready_fd() -> i32 {
    context::with_current_core(|_, slot| slot.ready_fd).unwrap_or(-1)
}

/// `async_connect(addr)`: start a non-blocking connection to `host:port` or a unix socket
/// path; the descriptor (the connection may still be in progress: wait for writability,
/// then check `is_connected`), or -1.
#[pyfunction]
fn async_connect(addr: &str) -> i32 {
    ruwsgi_sys::socket::connect_target(addr)
        .and_then(|t| ruwsgi_sys::socket::connect_stream(&t, true, None))
        .map_or(-1, IntoRawFd::into_raw_fd)
}

/// `connect(addr, timeout=0)`: a blocking connection (bounded by `timeout` seconds when
/// given); the descriptor, or -1.
#[pyfunction]
#[pyo3(signature = (addr, timeout = 0))]
fn connect(py: Python<'_>, addr: &str, timeout: i64) -> i32 {
    let timeout = (timeout > 0).then(|| Duration::from_secs(timeout as u64));
    py.detach(|| {
        ruwsgi_sys::socket::connect_target(addr)
            .and_then(|t| ruwsgi_sys::socket::connect_stream(&t, false, timeout))
            .map_or(-1, IntoRawFd::into_raw_fd)
    })
}

/// `is_connected(fd)`: false when the socket's connection failed (its pending error is
/// read, hence cleared) or `fd` is not a socket.
#[pyfunction]
fn is_connected(fd: i32) -> bool {
    fd >= 0 && rawfd::socket_error(fd).is_ok_and(|e| e == 0)
}

/// Wait for `fd` to be writable: the core suspends (greenlet), else the worker waits with
/// the interpreter released.
fn wait_writable(py: Python<'_>, fd: RawFd) -> bool {
    let parked = context::with_async(|a| a.in_greenlet).unwrap_or(false);
    if parked {
        let recorded = context::with_current_core(|_, slot| {
            slot.park.clear();
            slot.park.fds.push((fd, Interest::Write));
        });
        return recorded.is_some() && suspend_core(py).is_ok();
    }
    py.detach(|| rawfd::poll_one(fd, true, -1)).unwrap_or(false)
}

/// `send([fd,] data)`: write all of `data` (bytes) to `fd`, the client socket by default,
/// as raw bytes (no response framing). `True`, or `None` when writing failed.
#[pyfunction]
#[pyo3(signature = (*args))]
fn send(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Option<bool>> {
    let (fd, data) = match args.len() {
        1 => {
            let fd =
                context::with_request(|_, io| std::os::fd::AsRawFd::as_raw_fd(&io.connection_fd()))
                    .map_err(|_| {
                        pyo3::exceptions::PySystemError::new_err(
                            "you can call uwsgi api function only from the main callable",
                        )
                    })?;
            (fd, args.get_item(0)?)
        }
        2 => (args.get_item(0)?.extract::<i32>()?, args.get_item(1)?),
        n => {
            return Err(PyTypeError::new_err(format!(
                "send() takes 1 or 2 arguments ({n} given)"
            )))
        }
    };
    let data = data
        .cast::<PyBytes>()
        .map_err(|_| PyTypeError::new_err("send() data must be bytes"))?;
    let mut rest = data.as_bytes();
    while !rest.is_empty() {
        match rawfd::write(fd, rest) {
            Ok(0) => return Ok(None),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !wait_writable(py, fd) {
                    return Ok(None);
                }
            }
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(true))
}

/// `recv(fd, max=4096)`: up to `max` bytes (at most 4096) read from `fd`; `None` at end of
/// stream or on error (a non-blocking descriptor with nothing to read included).
#[pyfunction]
#[pyo3(signature = (fd, max = 4096))]
fn recv(py: Python<'_>, fd: i32, max: i64) -> Option<Bound<'_, PyBytes>> {
    let max = usize::try_from(max).unwrap_or(0).clamp(1, RECV_MAX);
    let mut buf = [0u8; RECV_MAX];
    let buf = &mut buf[..max];
    let n = py.detach(|| rawfd::read(fd, buf)).ok()?;
    (n > 0).then(|| PyBytes::new(py, &buf[..n]))
}

/// `close(fd)`: close a descriptor the app owns (one `connect`/`async_connect` gave it).
/// The request's own client socket is never closed this way (`disconnect()` is for that).
#[pyfunction]
#[allow(unsafe_code)]
fn close(fd: i32) {
    let client =
        context::with_request(|_, io| std::os::fd::AsRawFd::as_raw_fd(&io.connection_fd()));
    if fd < 0 || client.is_ok_and(|c| c == fd) {
        return;
    }
    // SAFETY: the app asks to close a descriptor it holds by number (uWSGI's close(fd));
    // no Rust owner in this process holds app descriptors, and the one the server owns for
    // this request (its client socket) was excluded above.
    unsafe {
        libc::close(fd);
    }
}

pub(super) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(suspend, m)?)?;
    m.add("green_schedule", m.getattr("suspend")?)?;
    m.add_function(wrap_pyfunction!(wait_fd_read, m)?)?;
    m.add_function(wrap_pyfunction!(wait_fd_write, m)?)?;
    m.add_function(wrap_pyfunction!(async_sleep, m)?)?;
    m.add_function(wrap_pyfunction!(ready_fd, m)?)?;
    m.add_function(wrap_pyfunction!(async_connect, m)?)?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(is_connected, m)?)?;
    m.add_function(wrap_pyfunction!(send, m)?)?;
    m.add_function(wrap_pyfunction!(recv, m)?)?;
    m.add_function(wrap_pyfunction!(close, m)?)?;
    Ok(())
}
