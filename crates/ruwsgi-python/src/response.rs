//! `start_response` and the `write` callable it returns (PEP 3333).
//!
//! Both objects are stateless: everything they touch lives in the current request slot
//! ([`crate::context`]), so one instance of each serves every request of the process (the
//! per-request cost is then a lookup, not an allocation), and `uwsgi.start_response` is the
//! same object. Status and headers must be `str` (latin-1); validation of their content is
//! the `RequestIo`'s, and a rejected head becomes a 500 when the app returns.

use std::borrow::Cow;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use ruwsgi_plugin::{RequestIo, ResponseError};

use crate::context::{self, RequestState};

/// The bytes of a `str` as latin-1 (PEP 3333 "native strings"). ASCII, the common case,
/// is borrowed without a copy.
pub(crate) fn latin1<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, [u8]>> {
    let text = s.to_str()?;
    if text.is_ascii() {
        return Ok(Cow::Borrowed(text.as_bytes()));
    }
    let mut out = Vec::with_capacity(text.len());
    for ch in text.chars() {
        let c = u32::from(ch);
        if c > 0xff {
            return Err(PyTypeError::new_err(format!(
                "response status and headers must be latin-1, got {text:?}"
            )));
        }
        out.push(c as u8);
    }
    Ok(Cow::Owned(out))
}

/// Write `data` as body bytes of the current request, releasing the interpreter when the
/// request asks for it. With `flush`, the bytes go to the client before this returns (PEP
/// 3333: a block the app hands over must not be held back while it produces the next one);
/// without it they may wait in the connection's buffer until the response finishes, which
/// is only right when the whole body is already known (a list or tuple).
pub(crate) fn write_body(
    py: Python<'_>,
    st: &mut RequestState,
    io: &mut dyn RequestIo,
    data: &[u8],
    flush: bool,
) -> Result<(), ResponseError> {
    let mut send = || {
        io.write(data)?;
        if flush {
            io.flush()?;
        }
        Ok(())
    };
    if st.detach_io {
        py.detach(send)
    } else {
        send()
    }
}

/// The app's header list (a list, or a tuple), indexed without the sequence protocol.
enum Headers<'a, 'py> {
    List(&'a Bound<'py, PyList>),
    Tuple(&'a Bound<'py, PyTuple>),
}

impl<'py> Headers<'_, 'py> {
    fn len(&self) -> usize {
        match self {
            Headers::List(l) => l.len(),
            Headers::Tuple(t) => t.len(),
        }
    }

    fn get(&self, i: usize) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Headers::List(l) => l.get_item(i),
            Headers::Tuple(t) => t.get_item(i),
        }
    }
}

/// The `(name, value)` strs of one header item, or a TypeError.
fn header_pair<'py>(
    item: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyString>)> {
    let bad = || PyTypeError::new_err("start_response: each header must be a (str, str) tuple");
    let pair = item.cast::<PyTuple>().map_err(|_| bad())?;
    if pair.len() != 2 {
        return Err(bad());
    }
    let name = pair
        .get_item(0)?
        .cast_into::<PyString>()
        .map_err(|_| bad())?;
    let value = pair
        .get_item(1)?
        .cast_into::<PyString>()
        .map_err(|_| bad())?;
    Ok((name, value))
}

/// The `start_response` callable.
#[pyclass(frozen, module = "uwsgi", name = "StartResponse")]
pub struct StartResponse {
    /// Handed back to the app: the `write` callable.
    pub(crate) writer: Py<Writer>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Writer>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("start_response: status must be a str"))?;
        let status = latin1(status)?;

        // Check every header's type before touching the response.
        let headers = if let Ok(list) = headers.cast::<PyList>() {
            Headers::List(list)
        } else if let Ok(t) = headers.cast::<PyTuple>() {
            Headers::Tuple(t)
        } else {
            return Err(PyTypeError::new_err(
                "start_response: headers must be a list of (str, str) tuples",
            ));
        };
        let count = headers.len();
        for i in 0..count {
            let (n, v) = header_pair(&headers.get(i)?)?;
            latin1(&n)?;
            latin1(&v)?;
        }
        let reraise = context::with_request(|st, io| {
            if st.started {
                if exc_info.is_none() {
                    return Err(PyRuntimeError::new_err(
                        "start_response() called twice without exc_info",
                    ));
                }
                if io.head_sent() {
                    return Ok(true);
                }
            }
            st.started = true;
            st.response_error = None;
            if let Err(e) = io.start(&status) {
                st.record(e);
                return Ok(false);
            }
            for i in 0..count {
                let item = headers.get(i)?;
                let (n, v) = header_pair(&item)?;
                if let Err(e) = io.header(&latin1(&n)?, &latin1(&v)?) {
                    st.record(e);
                    break;
                }
            }
            Ok(false)
        })??;
        if reraise {
            // The head is gone: the app's exception is all we can do (PEP 3333).
            if let Some(info) = exc_info {
                let value = info.get_item(1)?;
                return Err(PyErr::from_value(value));
            }
        }
        Ok(self.writer.clone_ref(py))
    }
}

/// The `write(data)` callable `start_response` returns.
#[pyclass(frozen, module = "uwsgi", name = "Writer")]
pub struct Writer;

#[pymethods]
impl Writer {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() argument must be bytes"))?;
        let bytes = data.as_bytes();
        context::with_request(|st, io| {
            if !st.started {
                return Err(PyRuntimeError::new_err(
                    "write() called before start_response()",
                ));
            }
            if st.response_error.is_some() {
                // The response is already doomed to a 500; drop the bytes.
                return Ok(());
            }
            if st.client_gone || st.disconnected {
                return Err(PyOSError::new_err("client connection closed"));
            }
            if bytes.is_empty() {
                return Ok(());
            }
            write_body(py, st, io, bytes, true).map_err(|e| {
                let msg = e.to_string();
                st.record(e);
                PyOSError::new_err(msg)
            })
        })?
    }
}
