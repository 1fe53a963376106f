//! `wsgi.errors`: a text stream whose complete lines go to the server log.
//!
//! One instance per core, shared by all its requests (the template dict holds it). Partial
//! lines wait in a buffer until a newline or `flush()`, so `print(..., file=errors)` (which
//! writes the text and the newline separately) yields one log line.

use std::sync::Mutex;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::runtime;

/// The `wsgi.errors` stream.
#[pyclass(frozen, module = "uwsgi", name = "ErrorsStream")]
pub struct ErrorsStream {
    /// Text written since the last newline. A mutex because the object is shared and
    /// frozen; it is never contended in practice (one core, the interpreter lock held).
    pending: Mutex<String>,
}

impl ErrorsStream {
    /// An empty stream.
    pub fn new() -> Self {
        ErrorsStream {
            pending: Mutex::new(String::new()),
        }
    }

    fn emit_lines(&self, flush_all: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(nl) = pending.find('\n') {
            let line: String = pending.drain(..=nl).collect();
            runtime::log(line.trim_end_matches(['\n', '\r']));
        }
        if flush_all && !pending.is_empty() {
            runtime::log(&pending);
            pending.clear();
        }
    }
}

impl Default for ErrorsStream {
    fn default() -> Self {
        Self::new()
    }
}

#[pymethods]
impl ErrorsStream {
    /// Write `s` (str, or bytes decoded as UTF-8 with replacement); returns its length.
    fn write(&self, s: &Bound<'_, PyAny>) -> PyResult<usize> {
        let (text, n) = if let Ok(s) = s.cast::<PyString>() {
            let t = s.to_cow()?.into_owned();
            let n = s.len()?;
            (t, n)
        } else if let Ok(b) = s.cast::<PyBytes>() {
            let b = b.as_bytes();
            (String::from_utf8_lossy(b).into_owned(), b.len())
        } else {
            return Err(PyTypeError::new_err("write() argument must be str"));
        };
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&text);
        self.emit_lines(false);
        Ok(n)
    }

    /// Write every string of `lines`.
    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    /// Send the buffered partial line to the log.
    fn flush(&self) {
        self.emit_lines(true);
    }

    fn writable(&self) -> bool {
        true
    }

    fn readable(&self) -> bool {
        false
    }

    #[getter]
    fn closed(&self) -> bool {
        false
    }
}
