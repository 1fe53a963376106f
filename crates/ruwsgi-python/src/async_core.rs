//! Async cores (`async N`): the [`AsyncCore`] the worker's loop drives.
//!
//! Two engines, chosen once when the worker starts:
//!
//! - **greenlet** (`greenlet`, `ugreen`): the loop runs in the thread's main greenlet (the
//!   hub); each core is a long-lived greenlet from a pool of N, created on first use and
//!   reused for every later request (a new greenlet per request would cost ~10 µs). A core
//!   greenlet runs [`CoreRunner`]: call the app, send the body, complete the response, mark
//!   the request done, switch back to the hub for the next one. `uwsgi.suspend()`, and the
//!   server's own waits on the client socket, switch to the hub from anywhere in the app.
//! - **generator** (no engine): the app is called from the loop and, when it returns an
//!   iterator, the loop pulls one item per turn (`PyIter_Next`); `yield
//!   uwsgi.wait_fd_read(fd)` parks the core between items. `uwsgi.suspend()` does nothing.
//!
//! In both, the waits an app records (`wait_fd_read`, `wait_fd_write`, `async_sleep`) and
//! the request's state and connection live in the per-core slots of [`crate::context`], so
//! cores interleave without sharing a request. Each streamed body item is one scheduling
//! step (the core goes back to the loop after it, as in uWSGI), and when it resumes the
//! environ's `x-wsgiorg.fdevent.timeout` and `uwsgi.ready_fd` say what woke it.
//!
//! No `RefCell` borrow and no reference into a slot survives a greenlet switch: a switch
//! happens only with the slot's contents taken out by the switching frame.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyIterator, PyList, PyString, PyTuple};
use ruwsgi_config::SuspendEngine;
use ruwsgi_plugin::{
    AsyncCore, AsyncIo, AsyncStep, Interest, Outcome, Park, Request, SuspendFn, Wake,
};

use crate::context::{self, RequestState};
use crate::file_wrapper::FileWrapper;
use crate::plugin::{Loaded, Shared};
use crate::runtime;
use crate::wsgi::{BodySender, PyCore, Step};

/// The hub side of one core's request.
#[derive(Default)]
struct Job<'py> {
    /// The app's id, for its counters once the request is over.
    app_id: usize,
    environ: Option<Bound<'py, PyDict>>,
    /// Generator engine: the app's return value and the iterator being pulled.
    result: Option<Bound<'py, PyAny>>,
    iter: Option<Bound<'py, PyIterator>>,
}

/// How the cores of this worker suspend.
enum Engine<'py> {
    Greenlet {
        /// `greenlet.greenlet`.
        new_greenlet: Bound<'py, PyAny>,
        /// Core greenlets, created on first use.
        pool: Vec<Option<Bound<'py, PyAny>>>,
    },
    Generator,
}

/// Environ keys set when a core resumes after a yield.
struct ResumeKeys<'py> {
    timeout: Bound<'py, PyString>,
    ready_fd: Bound<'py, PyString>,
}

impl<'py> ResumeKeys<'py> {
    fn new(py: Python<'py>) -> Self {
        ResumeKeys {
            timeout: PyString::intern(py, "x-wsgiorg.fdevent.timeout"),
            ready_fd: PyString::intern(py, "uwsgi.ready_fd"),
        }
    }

    /// Tell the app what woke its core (`x-wsgiorg.fdevent.timeout` True or None,
    /// `uwsgi.ready_fd` the descriptor or None) and reset the core's ready descriptor, as
    /// uWSGI does after a yield: inside a generator the environ is what says it.
    fn publish(&self, py: Python<'py>, environ: &Bound<'py, PyDict>, core: u16) {
        let (fd, timed_out) = with_core(core, |slot| {
            let seen = (slot.ready_fd, slot.timed_out);
            slot.ready_fd = -1;
            slot.timed_out = false;
            seen
        })
        .unwrap_or((-1, false));
        let timeout = if timed_out {
            PyBool::new(py, true).to_owned().into_any()
        } else {
            py.None().into_bound(py)
        };
        let ready = if fd >= 0 {
            fd.into_pyobject(py)
                .map(|b| b.into_any())
                .unwrap_or_else(|_| py.None().into_bound(py))
        } else {
            py.None().into_bound(py)
        };
        let _ = environ.set_item(&self.timeout, timeout);
        let _ = environ.set_item(&self.ready_fd, ready);
    }
}

/// The worker's async cores, on the thread that runs its loop.
pub(crate) struct PyAsyncCore<'py> {
    py: Python<'py>,
    base: PyCore<'py>,
    engine: Engine<'py>,
    jobs: Vec<Job<'py>>,
    keys: ResumeKeys<'py>,
    k_core: Bound<'py, PyString>,
}

/// Run `f` on core `core`'s slot (no borrow survives the call).
fn with_core<R>(core: u16, f: impl FnOnce(&mut context::CoreSlot) -> R) -> Option<R> {
    context::with_async(|a| a.slots.get_mut(usize::from(core)).map(f)).flatten()
}

/// Suspend the running core greenlet: back to the hub, which parks it on the waits it
/// recorded (none: it runs again on the loop's next pass). A no-op with no suspend engine
/// or outside a core greenlet.
pub(crate) fn suspend_core(py: Python<'_>) -> PyResult<()> {
    let hub = context::with_async(|a| {
        if a.in_greenlet {
            a.hub.as_ref().map(|h| h.clone_ref(py))
        } else {
            None
        }
    })
    .flatten();
    let Some(hub) = hub else {
        return Ok(());
    };
    hub.bind(py).call_method0(pyo3::intern!(py, "switch"))?;
    Ok(())
}

/// The [`SuspendFn`] of the greenlet engine: a body read or a response write that would
/// block parks the core on the client socket instead.
fn suspend_io(
    fd: BorrowedFd<'_>,
    writable: bool,
    timeout: Duration,
) -> Option<std::io::Result<bool>> {
    Python::attach(|py| {
        let parked = context::with_async(|a| {
            if !a.in_greenlet {
                return None;
            }
            let k = a.current?;
            let hub = a.hub.as_ref()?.clone_ref(py);
            let slot = a.slots.get_mut(usize::from(k))?;
            let interest = if writable {
                Interest::Write
            } else {
                Interest::Read
            };
            // The server's wait replaces what the app may have recorded meanwhile.
            slot.park.clear();
            slot.park.fds.push((fd.as_raw_fd(), interest));
            slot.park.timeout = (!timeout.is_zero()).then_some(timeout);
            Some((k, hub))
        })
        .flatten();
        let (k, hub) = parked?;
        if let Err(e) = hub.bind(py).call_method0(pyo3::intern!(py, "switch")) {
            return Some(Err(std::io::Error::other(format!(
                "the core was stopped while waiting: {e}"
            ))));
        }
        let timed_out = with_core(k, |slot| std::mem::take(&mut slot.timed_out)).unwrap_or(true);
        Some(Ok(!timed_out))
    })
}

/// The `run` of a core greenlet: serve the request it was switched in with, then the next
/// ones, forever (a core greenlet never ends while the worker runs).
#[pyclass(frozen, module = "uwsgi", name = "AsyncCoreRunner")]
pub(crate) struct CoreRunner {
    core: u16,
    accept_buffer: bool,
}

#[pymethods]
impl CoreRunner {
    fn __call__(
        &self,
        py: Python<'_>,
        app: Bound<'_, PyAny>,
        environ: Bound<'_, PyDict>,
        start_response: Bound<'_, PyAny>,
    ) {
        let mut job = (app, environ, start_response);
        loop {
            self.serve(py, &job.0, &job.1, &job.2);
            // Done: back to the hub until it hands over the next request.
            let next = context::with_async(|a| a.hub.as_ref().map(|h| h.clone_ref(py))).flatten();
            let Some(hub) = next else { return };
            match hub
                .bind(py)
                .call_method0(pyo3::intern!(py, "switch"))
                .and_then(|v| {
                    v.extract::<(Bound<'_, PyAny>, Bound<'_, PyDict>, Bound<'_, PyAny>)>()
                }) {
                Ok(j) => job = j,
                // Killed (GreenletExit) or handed something else: end this greenlet.
                Err(_) => return,
            }
        }
    }
}

impl CoreRunner {
    /// One request, from the app call to the completed response.
    fn serve(
        &self,
        py: Python<'_>,
        app: &Bound<'_, PyAny>,
        environ: &Bound<'_, PyDict>,
        start_response: &Bound<'_, PyAny>,
    ) {
        let core = self.core;
        let sender = BodySender {
            py,
            detach_io: false,
            accept_buffer: self.accept_buffer,
        };
        let keys = ResumeKeys::new(py);
        let fault = match app.call1((environ, start_response)) {
            Ok(result) => {
                // Each streamed item is one scheduling step.
                let f = sender.send_body(&result, || {
                    if let Err(e) = suspend_core(py) {
                        if !is_greenlet_exit(py, &e) {
                            runtime::log_exception(py, &e);
                        }
                        return false;
                    }
                    keys.publish(py, environ, core);
                    true
                });
                sender.close_result(&result) || f
            }
            // The worker is leaving and kills its cores: nothing to report.
            Err(e) if is_greenlet_exit(py, &e) => true,
            Err(e) => {
                runtime::log_exception(py, &e);
                true
            }
        };
        let outcome = complete(sender, core, fault);
        with_core(core, |slot| slot.done = Some(outcome));
    }
}

/// The exception greenlet throws into a core it kills (the worker stopping at once).
fn is_greenlet_exit(py: Python<'_>, e: &PyErr) -> bool {
    e.get_type(py)
        .name()
        .is_ok_and(|n| n.to_cow().is_ok_and(|n| n == "GreenletExit"))
}

/// Complete core `core`'s response after the app ran (the request's state and connection
/// leave the slot meanwhile: the final write may suspend the core) and put the connection
/// back for the loop.
fn complete(sender: BodySender<'_>, core: u16, fault: bool) -> Outcome {
    let taken = with_core(core, |slot| (slot.state.take(), slot.io.take()));
    let Some((Some(st), Some(mut io))) = taken else {
        return Outcome {
            exception: true,
            close: true,
        };
    };
    let outcome = sender.complete(io.request_io(), fault, st);
    // Gone only when the worker is leaving (its cores torn down): the connection closes.
    let _ = with_core(core, |slot| slot.io = Some(io));
    outcome
}

impl<'py> PyAsyncCore<'py> {
    /// `cores` async cores for this worker, with the configured engine.
    pub fn new(
        py: Python<'py>,
        shared: &Shared,
        loaded: Option<&Loaded>,
        cores: u16,
    ) -> PyResult<Self> {
        let base = PyCore::new(py, shared, loaded, 0)?;
        let module = shared.module.bind(py);
        base.environ_constant(
            "x-wsgiorg.fdevent.readable",
            &module.getattr("wait_fd_read")?,
        )?;
        base.environ_constant(
            "x-wsgiorg.fdevent.writable",
            &module.getattr("wait_fd_write")?,
        )?;
        let n = usize::from(cores);
        let (engine, hub) = match shared.suspend_engine {
            SuspendEngine::Greenlet => {
                let greenlet = py.import("greenlet")?;
                let hub = greenlet.getattr("getcurrent")?.call0()?;
                let engine = Engine::Greenlet {
                    new_greenlet: greenlet.getattr("greenlet")?,
                    pool: (0..n).map(|_| None).collect(),
                };
                (engine, Some(hub.unbind()))
            }
            SuspendEngine::None => {
                runtime::log(
                    "*** DANGER *** async mode without coroutine/greenthread engine loaded !!! \
                     (only generator responses can wait: add greenlet for uwsgi.suspend())",
                );
                (Engine::Generator, None)
            }
        };
        context::async_install(n, hub);
        Ok(PyAsyncCore {
            py,
            base,
            engine,
            jobs: (0..n).map(|_| Job::default()).collect(),
            keys: ResumeKeys::new(py),
            k_core: PyString::intern(py, "uwsgi.core"),
        })
    }

    fn sender(&self) -> BodySender<'py> {
        self.base.sender
    }

    /// Record what woke `core` for `ready_fd()` and the environ.
    fn woke(core: u16, wake: Wake) {
        with_core(core, |slot| {
            slot.ready_fd = match wake {
                Wake::Fd(fd) => fd,
                Wake::TimedOut | Wake::Run => -1,
            };
            slot.timed_out = wake == Wake::TimedOut;
        });
    }

    /// Make `core` the running one (`in_greenlet` when a core greenlet runs next).
    fn enter(core: Option<u16>, in_greenlet: bool) {
        context::with_async(|a| {
            a.current = core;
            a.in_greenlet = in_greenlet;
        });
    }

    /// The request on `core` is over: hand the connection back, count it.
    fn done(&mut self, core: u16, outcome: Outcome) -> AsyncStep {
        let io = with_core(core, |slot| {
            slot.state = None;
            slot.park.clear();
            slot.io.take()
        })
        .flatten();
        let job = std::mem::take(&mut self.jobs[usize::from(core)]);
        self.base.request_done(job.app_id, outcome);
        AsyncStep::Done(outcome, io)
    }

    /// The core went back to the loop without finishing: pass its waits on.
    fn parked(core: u16, park: &mut Park) -> AsyncStep {
        with_core(core, |slot| {
            park.fds.append(&mut slot.park.fds);
            park.timeout = slot.park.timeout.take();
        });
        AsyncStep::Parked
    }

    /// Switch into core `core`'s greenlet (starting a request with `args`, or resuming it
    /// with none) and see what it did once it switches back.
    fn switch_in(
        &mut self,
        core: u16,
        args: Option<Bound<'py, PyTuple>>,
        park: &mut Park,
    ) -> AsyncStep {
        let py = self.py;
        let k = usize::from(core);
        let Engine::Greenlet { new_greenlet, pool } = &mut self.engine else {
            return self.fail(core);
        };
        let g = match &pool[k] {
            Some(g) => g.clone(),
            None => {
                let runner = CoreRunner {
                    core,
                    accept_buffer: self.base.sender.accept_buffer,
                };
                match Bound::new(py, runner).and_then(|r| new_greenlet.call1((r,))) {
                    Ok(g) => {
                        pool[k] = Some(g.clone());
                        g
                    }
                    Err(e) => {
                        runtime::log_exception(py, &e);
                        return self.fail(core);
                    }
                }
            }
        };
        Self::enter(Some(core), true);
        let switched = match args {
            Some(a) => g.call_method1(pyo3::intern!(py, "switch"), a),
            None => g.call_method0(pyo3::intern!(py, "switch")),
        };
        Self::enter(None, false);
        if let Err(e) = switched {
            // Nothing escapes the runner; this greenlet is broken: replace it next time.
            runtime::log("python: an async core greenlet failed:");
            runtime::log_exception(py, &e);
            if let Engine::Greenlet { pool, .. } = &mut self.engine {
                pool[k] = None;
            }
            return self.fail(core);
        }
        match with_core(core, |slot| slot.done.take()).flatten() {
            Some(outcome) => self.done(core, outcome),
            None => Self::parked(core, park),
        }
    }

    /// The core cannot go on: answer 500 if nothing was sent and end the request.
    fn fail(&mut self, core: u16) -> AsyncStep {
        let st = with_core(core, |slot| slot.state.take()).flatten();
        let io = with_core(core, |slot| slot.io.take()).flatten();
        let outcome = match (st, io) {
            (Some(st), Some(mut io)) => {
                let o = self.sender().complete(io.request_io(), true, st);
                with_core(core, |slot| slot.io = Some(io));
                o
            }
            (_, io) => {
                with_core(core, |slot| slot.io = io);
                Outcome {
                    exception: true,
                    close: true,
                }
            }
        };
        self.done(core, outcome)
    }

    /// Generator engine: call the app for `core` and send what it returned, one streamed
    /// item per step.
    fn start_generator(
        &mut self,
        core: u16,
        app: &Bound<'py, PyAny>,
        environ: &Bound<'py, PyDict>,
        park: &mut Park,
    ) -> AsyncStep {
        let py = self.py;
        Self::enter(Some(core), false);
        let called = app.call1((environ, &self.base_start_response()));
        let result = match called {
            Ok(r) => r,
            Err(e) => {
                runtime::log_exception(py, &e);
                Self::enter(None, false);
                return self.finish_generator(core, true);
            }
        };
        let whole = result.is_exact_instance_of::<PyList>()
            || result.is_exact_instance_of::<PyTuple>()
            || result.cast::<FileWrapper>().is_ok();
        if whole {
            let fault = self.sender().send_body(&result, || true);
            let fault = self.sender().close_result(&result) || fault;
            Self::enter(None, false);
            return self.finish_generator(core, fault);
        }
        let iter = match result.try_iter() {
            Ok(i) => i,
            Err(_) => {
                runtime::log(&format!(
                    "TypeError: the WSGI app must return an iterable of bytes, not {}",
                    result
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ));
                self.sender().close_result(&result);
                Self::enter(None, false);
                return self.finish_generator(core, true);
            }
        };
        let job = &mut self.jobs[usize::from(core)];
        job.result = Some(result);
        job.iter = Some(iter);
        Self::enter(None, false);
        self.step_generator(core, park)
    }

    /// Generator engine: pull and send one item.
    fn step_generator(&mut self, core: u16, park: &mut Park) -> AsyncStep {
        let py = self.py;
        let k = usize::from(core);
        let Some(iter) = self.jobs[k].iter.clone() else {
            return self.finish_generator(core, true);
        };
        Self::enter(Some(core), false);
        let next = iter.clone().next();
        let step = match next {
            None => Step::Stop(false),
            Some(Err(e)) => {
                runtime::log_exception(py, &e);
                Step::Stop(true)
            }
            Some(Ok(item)) => self.sender().write_item(&item, true),
        };
        let fault = match step {
            Step::Continue => {
                Self::enter(None, false);
                return Self::parked(core, park);
            }
            Step::Stop(fault) => fault,
        };
        let result = self.jobs[k].result.take();
        let fault = result.is_some_and(|r| self.sender().close_result(&r)) || fault;
        Self::enter(None, false);
        self.finish_generator(core, fault)
    }

    /// Generator engine: complete the response and end the request.
    fn finish_generator(&mut self, core: u16, fault: bool) -> AsyncStep {
        let outcome = complete(self.sender(), core, fault);
        self.done(core, outcome)
    }

    fn base_start_response(&self) -> Bound<'py, PyAny> {
        self.base.start_response_obj()
    }
}

impl AsyncCore for PyAsyncCore<'_> {
    fn start(
        &mut self,
        core: u16,
        req: &Request<'_>,
        mut io: Box<dyn AsyncIo>,
        park: &mut Park,
    ) -> AsyncStep {
        let py = self.py;
        let Some((idx, split)) = self.base.select(req) else {
            let outcome = self.base.no_app(io.request_io());
            return AsyncStep::Done(outcome, Some(io));
        };
        let (app, app_id) = self.base.app(idx);
        self.base.count_request(app_id);
        let generation = context::next_generation();
        let suspendable = matches!(self.engine, Engine::Greenlet { .. });
        let state = RequestState {
            generation,
            request_id: req.request_id,
            suspendable,
            ..RequestState::default()
        };
        let installed = with_core(core, |slot| {
            slot.state = Some(state);
            slot.io = Some(io);
            slot.park.clear();
            slot.ready_fd = -1;
            slot.timed_out = false;
            slot.done = None;
        });
        if installed.is_none() {
            runtime::log(&format!("python: no async core {core}"));
            return AsyncStep::Done(
                Outcome {
                    exception: true,
                    close: true,
                },
                None,
            );
        }
        self.jobs[usize::from(core)].app_id = app_id;
        let Some(environ) = self.base.environ(idx, split, req, generation) else {
            return self.fail(core);
        };
        let _ = environ.set_item(&self.k_core, core);
        self.jobs[usize::from(core)].environ = Some(environ.clone());
        match self.engine {
            Engine::Greenlet { .. } => {
                let args = PyTuple::new(
                    py,
                    [app.clone(), environ.into_any(), self.base_start_response()],
                );
                match args {
                    Ok(args) => self.switch_in(core, Some(args), park),
                    Err(e) => {
                        runtime::log_exception(py, &e);
                        self.fail(core)
                    }
                }
            }
            Engine::Generator => self.start_generator(core, &app, &environ, park),
        }
    }

    fn resume(&mut self, core: u16, wake: Wake, park: &mut Park) -> AsyncStep {
        Self::woke(core, wake);
        match self.engine {
            Engine::Greenlet { .. } => self.switch_in(core, None, park),
            Engine::Generator => {
                if let Some(environ) = self.jobs[usize::from(core)].environ.clone() {
                    self.keys.publish(self.py, &environ, core);
                }
                self.step_generator(core, park)
            }
        }
    }

    fn suspender(&self) -> Option<SuspendFn> {
        match self.engine {
            Engine::Greenlet { .. } => Some(suspend_io),
            Engine::Generator => None,
        }
    }

    fn blocking(&mut self, wait: &mut (dyn FnMut() + Send)) {
        self.py.detach(wait);
    }
}

impl Drop for PyAsyncCore<'_> {
    fn drop(&mut self) {
        // Attached here (the plugin drops the cores inside its attach): the slots' Python
        // objects and the greenlets go while the interpreter is held.
        let cores = context::async_remove();
        if let Engine::Greenlet { pool, .. } = &mut self.engine {
            pool.clear();
        }
        drop(cores);
    }
}
