//! `wsgi.input`: the request body as a streaming, read-only binary file.
//!
//! A fresh object per request, bound to that request's generation: reads pull from
//! `RequestIo::read_body` with the interpreter released, and once the request is over every
//! read raises. A body error (truncated body, bad chunking, timeout) raises `OSError` and
//! keeps raising: a broken body must never look like a short one (http-rules R10).

use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::context;

/// Bytes asked of the connection per pull when the caller gives no size.
const CHUNK: usize = 64 * 1024;
/// Largest single pull, whatever size the app asks for.
const MAX_PULL: usize = 1024 * 1024;
/// Largest up-front allocation for `read()` of a body with a known length.
const MAX_PRESIZE: u64 = 16 * 1024 * 1024;

#[derive(Default)]
struct Buffered {
    /// Bytes pulled but not yet returned start at `pos`.
    data: Vec<u8>,
    pos: usize,
    /// The body ended as framed.
    eof: bool,
    /// The body failed; every later read raises this again.
    failed: Option<String>,
}

impl Buffered {
    fn available(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.available());
        let start = self.pos;
        self.pos += n;
        &self.data[start..start + n]
    }
}

/// The `wsgi.input` object of one request.
#[pyclass(frozen, module = "uwsgi", name = "InputStream")]
pub struct InputStream {
    generation: u64,
    /// Read-ahead buffer. Only this request's core thread can use it (other threads fail
    /// the generation check); `try_lock` keeps a misuse from ever blocking while attached.
    buf: Mutex<Buffered>,
}

impl InputStream {
    /// A stream over the body of the request with `generation`.
    pub(crate) fn new(generation: u64) -> Self {
        InputStream {
            generation,
            buf: Mutex::new(Buffered::default()),
        }
    }

    /// The buffer, for one read call; raises again if the body already failed.
    fn lock(&self) -> PyResult<MutexGuard<'_, Buffered>> {
        let guard = match self.buf.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "wsgi.input used concurrently from two threads",
                ))
            }
        };
        if let Some(msg) = &guard.failed {
            return Err(PyOSError::new_err(msg.clone()));
        }
        Ok(guard)
    }

    /// Pull up to `max` more body bytes into the buffer; 0 at the end of the body.
    fn pull(&self, py: Python<'_>, b: &mut Buffered, max: usize) -> PyResult<usize> {
        if let Some(msg) = &b.failed {
            return Err(PyOSError::new_err(msg.clone()));
        }
        if b.eof {
            return Ok(0);
        }
        if b.pos > 0 {
            b.data.drain(..b.pos);
            b.pos = 0;
        }
        let old = b.data.len();
        b.data.resize(old + max.clamp(1, MAX_PULL), 0);
        let dst = &mut b.data[old..];
        let res = context::with_request_of(self.generation, |st, io| {
            let r = if st.suspendable {
                // The core may switch to another one while it waits: keep the interpreter.
                io.read_body(dst)
            } else {
                py.detach(|| io.read_body(dst))
            };
            if r.is_err() {
                st.body_error = true;
            }
            r
        });
        match res {
            Ok(Ok(n)) => {
                b.data.truncate(old + n);
                if n == 0 {
                    b.eof = true;
                }
                Ok(n)
            }
            Ok(Err(e)) => {
                b.data.truncate(old);
                let msg = e.to_string();
                b.failed = Some(msg.clone());
                Err(PyOSError::new_err(msg))
            }
            Err(e) => {
                b.data.truncate(old);
                Err(e)
            }
        }
    }

    /// The common case made cheap: nothing is buffered and the framing says how many bytes
    /// are left, so up to `want` of them are read straight into the new `bytes` object (one
    /// copy, no intermediate buffer). `None` when the length is unknown (chunked).
    fn read_direct<'py>(
        &self,
        py: Python<'py>,
        b: &mut Buffered,
        want: usize,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(rem) = context::with_request_of(self.generation, |_, io| io.body_remaining())?
        else {
            return Ok(None);
        };
        let len = (want as u64).min(rem).min(MAX_PULL as u64) as usize;
        if len == 0 {
            // Either the caller asked for nothing or the body is over.
            b.eof |= rem == 0;
            return Ok(Some(PyBytes::new(py, b"")));
        }
        // The common case: the whole read already arrived with the head. One copy straight
        // into the bytes object, with the interpreter held (releasing and re-taking it
        // would cost more than the copy).
        let ready = context::with_request_of(self.generation, |_, io| {
            io.take_buffered_body(len)
                .map(|data| PyBytes::new(py, data))
        })?;
        if let Some(bytes) = ready {
            return Ok(Some(bytes));
        }
        let mut failure: Option<String> = None;
        let bytes = PyBytes::new_with(py, len, |dst| {
            let mut filled = 0;
            while filled < len {
                let rest = &mut dst[filled..];
                let r = context::with_request_of(self.generation, |st, io| {
                    let r = if st.suspendable {
                        io.read_body(rest)
                    } else {
                        py.detach(|| io.read_body(rest))
                    };
                    if r.is_err() {
                        st.body_error = true;
                    }
                    r
                })?;
                match r {
                    Ok(0) => {
                        failure = Some(
                            "client closed the connection before the end of the request body"
                                .to_string(),
                        );
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
            }
            Ok(())
        })?;
        if let Some(msg) = failure {
            b.failed = Some(msg.clone());
            return Err(PyOSError::new_err(msg));
        }
        Ok(Some(bytes))
    }

    fn read_all<'py>(&self, py: Python<'py>, b: &mut Buffered) -> PyResult<Bound<'py, PyBytes>> {
        if b.available() == 0 && !b.eof {
            if let Some(bytes) = self.read_direct(py, b, MAX_PULL)? {
                // A body over MAX_PULL continues through the buffered path below.
                if bytes.as_bytes().len() < MAX_PULL {
                    return Ok(bytes);
                }
                b.data.extend_from_slice(bytes.as_bytes());
            }
        }
        let hint = context::with_request_of(self.generation, |_, io| io.body_remaining())?;
        if let Some(rem) = hint {
            b.data.reserve(rem.min(MAX_PRESIZE) as usize);
        }
        loop {
            let want = match hint {
                Some(rem) => (rem as usize)
                    .saturating_sub(b.available())
                    .clamp(1, MAX_PULL),
                None => CHUNK,
            };
            if self.pull(py, b, want)? == 0 {
                break;
            }
        }
        let n = b.available();
        Ok(PyBytes::new(py, b.take(n)))
    }

    fn read_line<'py>(
        &self,
        py: Python<'py>,
        b: &mut Buffered,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut scanned = 0;
        loop {
            let avail = &b.data[b.pos..];
            if let Some(i) = avail[scanned..].iter().position(|&c| c == b'\n') {
                let len = scanned + i + 1;
                let len = limit.map_or(len, |l| len.min(l));
                return Ok(PyBytes::new(py, b.take(len)));
            }
            scanned = avail.len();
            if let Some(l) = limit {
                if scanned >= l {
                    return Ok(PyBytes::new(py, b.take(l)));
                }
            }
            if self.pull(py, b, 8192)? == 0 {
                let n = b.available();
                let n = limit.map_or(n, |l| n.min(l));
                return Ok(PyBytes::new(py, b.take(n)));
            }
        }
    }
}

/// A negative or missing size means "no limit", as for Python files.
fn size_arg(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl InputStream {
    /// `read()` / `read(-1)`: the rest of the body; `read(n)`: `n` bytes, fewer only at the
    /// end of the body.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let mut b = self.lock()?;
        let Some(n) = size_arg(size) else {
            return self.read_all(py, &mut b);
        };
        if b.available() == 0 && !b.eof && n <= MAX_PULL {
            if let Some(bytes) = self.read_direct(py, &mut b, n)? {
                return Ok(bytes);
            }
        }
        while b.available() < n {
            let missing = n - b.available();
            if self.pull(py, &mut b, missing.max(8192))? == 0 {
                break;
            }
        }
        Ok(PyBytes::new(py, b.take(n)))
    }

    /// One line, including its `\n`, or at most `size` bytes of it.
    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let mut b = self.lock()?;
        self.read_line(py, &mut b, size_arg(size))
    }

    /// All remaining lines, stopping once more than `hint` bytes were returned.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint).filter(|&h| h > 0);
        let mut b = self.lock()?;
        let out = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.read_line(py, &mut b, None)?;
            let len = line.as_bytes().len();
            if len == 0 {
                break;
            }
            out.append(line)?;
            total += len;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(out)
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut b = self.lock()?;
        let line = self.read_line(py, &mut b, None)?;
        Ok(if line.as_bytes().is_empty() {
            None
        } else {
            Some(line)
        })
    }

    fn readable(&self) -> bool {
        true
    }

    fn close(&self) {}
}
