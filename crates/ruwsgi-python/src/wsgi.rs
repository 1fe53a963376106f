//! One core: serving a request through a WSGI app.
//!
//! [`PyCore`] lives on its thread, attached to the interpreter for the thread's whole life,
//! and owns the per-core state built once (environ template, interned keys, app
//! references). A request runs inside a [`context::scope`] so the Python-side objects reach
//! its connection; the response is then completed (or replaced by a 500) outside it. App
//! faults never panic: they are logged with their traceback and become a 500 when the head
//! was not sent yet, or a closed connection when it was.

use std::os::fd::{AsFd, BorrowedFd};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use ruwsgi_config::UWSGI_API_VERSION;
use ruwsgi_plugin::{Core, Outcome, Request, RequestIo, ResponseError};

use crate::apps::{self, AppCounters, Apps};
use crate::context::{self, RequestState};
use crate::environ::{EnvironBuilder, EnvironConsts};
use crate::errors_stream::ErrorsStream;
use crate::file_wrapper::FileWrapper;
use crate::input::InputStream;
use crate::plugin::{Loaded, Shared};
use crate::response::{write_body, StartResponse};
use crate::runtime;

const ERROR_500_STATUS: &[u8] = b"500 Internal Server Error";
const ERROR_500_BODY: &[u8] = b"Internal Server Error\n";

/// A core of the Python plugin.
pub(crate) struct PyCore<'py> {
    py: Python<'py>,
    environ: EnvironBuilder,
    apps: Apps,
    /// This worker's per-app counters in the scoreboard (`None` outside a worker).
    counters: Option<AppCounters>,
    start_response: Bound<'py, StartResponse>,
    after_req_hook: Option<Bound<'py, PyAny>>,
    /// The `uwsgi` module's dict, to publish `uwsgi.env` (single-core workers only).
    module_dict: Option<Bound<'py, PyDict>>,
    k_env: Bound<'py, PyString>,
    manage_script_name: bool,
    /// Writes response bodies (and completes responses) for this core.
    pub(crate) sender: BodySender<'py>,
    /// `plugins = notfound`: 404 when no app serves the request.
    notfound: bool,
}

/// How a core writes the app's response: body items, files, the final flush, and the
/// server's own 404/500. Shared by sync cores and async cores (which call it from their
/// greenlets, or step by step for generators).
#[derive(Clone, Copy)]
pub(crate) struct BodySender<'py> {
    pub py: Python<'py>,
    /// Several cores share the interpreter: release it around writes.
    pub detach_io: bool,
    /// `wsgi-accept-buffer`: body items may be any buffer, not only bytes.
    pub accept_buffer: bool,
}

/// What one body item did to the response.
pub(crate) enum Step {
    Continue,
    /// Stop iterating; `true` when the app is at fault.
    Stop(bool),
}

impl<'py> PyCore<'py> {
    pub fn new(
        py: Python<'py>,
        shared: &Shared,
        loaded: Option<&Loaded>,
        core_id: u16,
    ) -> PyResult<Self> {
        let s = &shared.python;
        let threads = shared.threads;
        let errors = Py::new(py, ErrorsStream::new())?.into_any();
        let file_wrapper =
            (!s.disable_file_wrapper).then(|| py.get_type::<FileWrapper>().into_any().unbind());
        let environ = EnvironBuilder::new(
            py,
            EnvironConsts {
                multithread: threads > 1,
                multiprocess: shared.workers > 1,
                core: (threads > 1).then_some(core_id),
                errors,
                file_wrapper,
                version: UWSGI_API_VERSION.as_bytes(),
                node: &shared.hostname,
            },
        )?;
        let module = shared.module.bind(py);
        let module_dict = (threads == 1).then(|| module.dict());
        let counters = loaded.and_then(|l| apps::publish_once(py, &l.apps, &l.published, threads));
        Ok(PyCore {
            py,
            environ,
            apps: loaded.map(|l| l.apps.for_core(py)).unwrap_or_default(),
            counters,
            start_response: shared.start_response.bind(py).clone(),
            after_req_hook: loaded
                .and_then(|l| l.after_req_hook.as_ref().map(|h| h.bind(py).clone())),
            module_dict,
            k_env: PyString::intern(py, "env"),
            manage_script_name: s.manage_script_name,
            sender: BodySender {
                py,
                detach_io: threads > 1,
                accept_buffer: s.accept_buffer,
            },
            notfound: shared.notfound,
        })
    }

    /// Build the environ of request `req` for app `idx` (its `wsgi.input` bound to
    /// `generation`); `None` (logged) when that failed.
    pub(crate) fn environ(
        &mut self,
        idx: usize,
        split: Option<usize>,
        req: &Request<'_>,
        generation: u64,
    ) -> Option<Bound<'py, PyDict>> {
        let py = self.py;
        let input = match Bound::new(py, InputStream::new(generation)) {
            Ok(i) => i,
            Err(e) => {
                runtime::log_exception(py, &e);
                return None;
            }
        };
        let app = &self.apps.list[idx];
        let path_info;
        let rewrite = match split {
            Some(n) => {
                path_info = req.vars.get(b"PATH_INFO").unwrap_or_default();
                Some((
                    app.mountpoint.as_bytes(),
                    path_info.get(n..).unwrap_or_default(),
                ))
            }
            None => None,
        };
        let environ = match self
            .environ
            .build(py, req.vars, req.scheme, input.as_any(), rewrite)
        {
            Ok(e) => e,
            Err(e) => {
                runtime::log("cannot build the WSGI environ:");
                runtime::log_exception(py, &e);
                return None;
            }
        };
        if let Some(d) = &self.module_dict {
            // Best effort: `uwsgi.env` is a convenience.
            let _ = d.set_item(&self.k_env, &environ);
        }
        Some(environ)
    }

    /// Build the environ, call the app and send its body; true when the app faulted.
    fn run_app(
        &mut self,
        idx: usize,
        split: Option<usize>,
        req: &Request<'_>,
        generation: u64,
    ) -> bool {
        let Some(environ) = self.environ(idx, split, req, generation) else {
            return true;
        };
        let app = self.apps.list[idx].callable.bind(self.py);
        let result = match app.call1((environ, &self.start_response)) {
            Ok(r) => r,
            Err(e) => {
                runtime::log_exception(self.py, &e);
                return true;
            }
        };
        let fault = self.sender.send_body(&result, || true);
        self.sender.close_result(&result) || fault
    }

    /// Put `key: value` in every later environ of this core.
    pub(crate) fn environ_constant(&self, key: &str, value: &Bound<'py, PyAny>) -> PyResult<()> {
        self.environ.set_constant(self.py, key, value)
    }

    /// The app serving `req`: its index and mount split, or `None` (no app).
    pub(crate) fn select(&self, req: &Request<'_>) -> Option<(usize, Option<usize>)> {
        self.apps.select(req.vars, self.manage_script_name)
    }

    /// Answer a request no app serves (404 with `notfound`, else 500).
    pub(crate) fn no_app(&self, io: &mut dyn RequestIo) -> Outcome {
        if self.notfound {
            let close = io.head_sent() || !self.sender.send_404(io);
            return Outcome {
                exception: false,
                close,
            };
        }
        runtime::log("--- no python application found, check your startup logs for errors ---");
        let close = io.head_sent() || !self.sender.send_500(io);
        Outcome {
            exception: false,
            close,
        }
    }

    /// The app `idx` as its callable, and its id.
    pub(crate) fn app(&self, idx: usize) -> (Bound<'py, PyAny>, usize) {
        let app = &self.apps.list[idx];
        (app.callable.bind(self.py).clone(), app.id)
    }

    /// The shared `start_response`.
    pub(crate) fn start_response_obj(&self) -> Bound<'py, PyAny> {
        self.start_response.clone().into_any()
    }

    /// Count a request of app `app_id` (before the call, so the app sees itself in
    /// `uwsgi.workers()`).
    pub(crate) fn count_request(&self, app_id: usize) {
        if let Some(c) = &self.counters {
            c.request(app_id);
        }
    }

    /// After a request of app `app_id`: count its exception and run `after_req_hook`.
    pub(crate) fn request_done(&self, app_id: usize, outcome: Outcome) {
        if outcome.exception {
            if let Some(c) = &self.counters {
                c.exception(app_id);
            }
        }
        if let Some(hook) = &self.after_req_hook {
            runtime::call_hook(self.py, "after_req_hook", hook);
        }
    }
}

impl<'py> BodySender<'py> {
    /// Call the result's `close()` if it has one; true when that raised.
    pub(crate) fn close_result(&self, result: &Bound<'py, PyAny>) -> bool {
        let py = self.py;
        // Exact lists and tuples have no close(); skip the costly failed lookup.
        if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
            return false;
        }
        match result.getattr_opt(pyo3::intern!(py, "close")) {
            Ok(Some(close)) => {
                if let Err(e) = close.call0() {
                    runtime::log_exception(py, &e);
                    return true;
                }
                false
            }
            Ok(None) => false,
            Err(e) => {
                runtime::log_exception(py, &e);
                true
            }
        }
    }

    /// Send the app's body; true when the app faulted. `after_item` runs after each item of
    /// a streamed body (async cores yield there); false from it stops as a fault.
    pub(crate) fn send_body(
        &self,
        result: &Bound<'py, PyAny>,
        mut after_item: impl FnMut() -> bool,
    ) -> bool {
        let py = self.py;
        if let Ok(fw) = result.cast::<FileWrapper>() {
            if let Some(fault) = self.try_sendfile(fw) {
                return fault;
            }
        }
        if let Ok(list) = result.cast_exact::<PyList>() {
            for item in list.iter() {
                if let Step::Stop(fault) = self.write_item(&item, false) {
                    return fault;
                }
            }
            return false;
        }
        if let Ok(tuple) = result.cast_exact::<PyTuple>() {
            for item in tuple.iter() {
                if let Step::Stop(fault) = self.write_item(&item, false) {
                    return fault;
                }
            }
            return false;
        }
        let iter = match result.try_iter() {
            Ok(i) => i,
            Err(_) => {
                let ty = type_name(result);
                runtime::log(&format!(
                    "TypeError: the WSGI app must return an iterable of bytes, not {ty}"
                ));
                return true;
            }
        };
        for item in iter {
            match item {
                Ok(item) => {
                    if let Step::Stop(fault) = self.write_item(&item, true) {
                        return fault;
                    }
                    if !after_item() {
                        return true;
                    }
                }
                Err(e) => {
                    runtime::log_exception(py, &e);
                    return true;
                }
            }
        }
        false
    }

    /// Write one body block; `flush` sends it before the next block is asked for (streamed
    /// bodies), lists and tuples are written whole at finish.
    pub(crate) fn write_item(&self, item: &Bound<'py, PyAny>, flush: bool) -> Step {
        let py = self.py;
        let copied;
        let data = if let Ok(bytes) = item.cast::<PyBytes>() {
            bytes.as_bytes()
        } else if let Some(buffer) = self.buffer_bytes(item) {
            copied = buffer;
            copied.as_bytes()
        } else {
            runtime::log(&format!(
                "TypeError: WSGI response body items must be bytes, not {}",
                type_name(item)
            ));
            return Step::Stop(true);
        };
        let step = context::with_request(|st, io| {
            if !st.started {
                runtime::log("the WSGI app sent a body before calling start_response()");
                return Step::Stop(true);
            }
            if st.response_error.is_some() || st.client_gone || st.disconnected {
                return Step::Stop(false);
            }
            if data.is_empty() {
                return Step::Continue;
            }
            match write_body(py, st, io, data, flush) {
                Ok(()) => Step::Continue,
                Err(e) => {
                    st.record(e);
                    Step::Stop(false)
                }
            }
        });
        step.unwrap_or(Step::Stop(true))
    }

    /// The zero-copy path of `wsgi.file_wrapper`: `None` when the file-like has no usable
    /// `fileno()` (iterate instead), else whether the app faulted.
    #[allow(unsafe_code)]
    fn try_sendfile(&self, fw: &Bound<'py, FileWrapper>) -> Option<bool> {
        let py = self.py;
        let f = fw.get().filelike.bind(py);
        let pos: u64 = f
            .call_method0(pyo3::intern!(py, "tell"))
            .ok()
            .and_then(|p| p.extract().ok())
            .unwrap_or(0);
        let fd: i32 = f
            .call_method0(pyo3::intern!(py, "fileno"))
            .ok()?
            .extract()
            .ok()?;
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned by fileno() of a file object we hold a strong
        // reference to, and we hold the GIL, so no Python code ran since to close it; the
        // borrow lasts only for the dup below.
        let owned = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .ok()?;
        let fault = context::with_request(|st, io| {
            if !st.started {
                runtime::log("the WSGI app returned a file before calling start_response()");
                return true;
            }
            if st.response_error.is_some() || st.client_gone || st.disconnected {
                return false;
            }
            let res = if st.detach_io {
                py.detach(|| io.send_file(owned.as_fd(), pos, None))
            } else {
                io.send_file(owned.as_fd(), pos, None)
            };
            if let Err(e) = res {
                st.record(e);
            }
            false
        });
        Some(fault.unwrap_or(true))
    }

    fn finish(&self, io: &mut dyn RequestIo) -> Result<(), ResponseError> {
        if self.detach_io {
            self.py.detach(|| io.finish())
        } else {
            io.finish()
        }
    }

    /// `wsgi-accept-buffer`: the bytes of a body item that is not `bytes` but exposes the
    /// buffer protocol (`bytearray`, `memoryview`, `array.array`, ...), in C order.
    fn buffer_bytes(&self, item: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
        if !self.accept_buffer {
            return None;
        }
        let view = pyo3::types::PyMemoryView::from(item).ok()?;
        view.call_method0(pyo3::intern!(self.py, "tobytes"))
            .ok()?
            .cast_into::<PyBytes>()
            .ok()
    }

    /// `plugins = notfound`: answer 404; false if that was not possible.
    pub(crate) fn send_404(&self, io: &mut dyn RequestIo) -> bool {
        let sent = io
            .start(b"404 Not Found")
            .and_then(|()| io.header(b"Content-Type", b"text/plain"))
            .and_then(|()| io.write(b"Not Found\n"))
            .and_then(|()| self.finish(io));
        sent.is_ok()
    }

    /// Replace the response with a 500; false if that was not possible.
    pub(crate) fn send_500(&self, io: &mut dyn RequestIo) -> bool {
        let sent = io
            .start(ERROR_500_STATUS)
            .and_then(|()| io.header(b"Content-Type", b"text/plain"))
            .and_then(|()| io.write(ERROR_500_BODY))
            .and_then(|()| self.finish(io));
        sent.is_ok()
    }

    /// Complete the response after the app ran.
    pub(crate) fn complete(
        &self,
        io: &mut dyn RequestIo,
        fault: bool,
        st: RequestState,
    ) -> Outcome {
        let mut close = st.client_gone || st.disconnected || st.body_error;
        if let Some(e) = &st.response_error {
            runtime::log(&format!("invalid response from the WSGI app: {e}"));
        }
        if !fault && !st.started {
            runtime::log("the WSGI app did not call start_response()");
        }
        let failed = fault || st.response_error.is_some() || !st.started;
        if st.client_gone || st.disconnected {
            return Outcome {
                exception: failed,
                close: true,
            };
        }
        if failed {
            if io.head_sent() || !self.send_500(io) {
                close = true;
            }
        } else if let Err(e) = self.finish(io) {
            if e.is_app_error() {
                runtime::log(&format!("invalid response from the WSGI app: {e}"));
                if io.head_sent() || !self.send_500(io) {
                    close = true;
                }
                return Outcome {
                    exception: true,
                    close,
                };
            }
            close = true;
        }
        Outcome {
            exception: failed,
            close,
        }
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

impl Core for PyCore<'_> {
    fn handle(&mut self, req: &Request<'_>, io: &mut dyn RequestIo) -> Outcome {
        let Some((idx, split)) = self.select(req) else {
            return self.no_app(io);
        };
        // Counted before the call, so the app sees its own request in `uwsgi.workers()`.
        let app_id = self.apps.list[idx].id;
        self.count_request(app_id);
        let generation = context::next_generation();
        let state = RequestState {
            generation,
            request_id: req.request_id,
            detach_io: self.sender.detach_io,
            ..RequestState::default()
        };
        let (fault, st) = context::scope(io, state, || self.run_app(idx, split, req, generation));
        let outcome = self.sender.complete(io, fault, st);
        self.request_done(app_id, outcome);
        outcome
    }

    /// Released whatever the number of cores, so threads the app started (`enable-threads`,
    /// on by default) run while this core waits for clients, as in uWSGI. The price is one
    /// release and re-acquire of the interpreter per loop turn, not per request: 33-36 ns
    /// here (`perf_blocking_turn`), shared by every event the turn serves.
    fn blocking(&mut self, wait: &mut (dyn FnMut() + Send)) {
        self.py.detach(wait);
    }
}
