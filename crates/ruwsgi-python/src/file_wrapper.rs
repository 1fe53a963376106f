//! `wsgi.file_wrapper`: lets the server send a file zero-copy.
//!
//! The wrapper is an ordinary iterable (`read(blksize)` until empty) so any consumer works;
//! the core recognises an exact `FileWrapper` returned by the app and, when the wrapped
//! object has a usable `fileno()`, sends it with `RequestIo::send_file` from its current
//! position instead of iterating.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The object `environ['wsgi.file_wrapper'](filelike, blksize)` returns.
#[pyclass(frozen, module = "uwsgi", name = "FileWrapper")]
pub struct FileWrapper {
    /// The app's file-like object.
    pub(crate) filelike: Py<PyAny>,
    /// Bytes per `read()` on the iteration path.
    pub(crate) blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: isize) -> Self {
        let blksize = if blksize > 0 { blksize as usize } else { 8192 };
        FileWrapper { filelike, blksize }
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(pyo3::intern!(py, "read"), (self.blksize,))?;
        let empty = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().is_empty(),
            Err(_) => data.len().map(|n| n == 0).unwrap_or(false),
        };
        Ok(if empty { None } else { Some(data) })
    }

    /// Close the wrapped object, if it can be closed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if let Some(close) = f.getattr_opt(pyo3::intern!(py, "close"))? {
            close.call0()?;
        }
        Ok(())
    }

    /// The wrapped object.
    #[getter]
    fn filelike(&self, py: Python<'_>) -> Py<PyAny> {
        self.filelike.clone_ref(py)
    }
}
