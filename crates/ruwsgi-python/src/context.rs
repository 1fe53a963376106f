//! The request in flight on this thread, as the Python objects of a request reach it.
//!
//! `start_response`, the `write` callable, `wsgi.input` and the request-bound `uwsgi`
//! functions are Python objects the app may keep, call late, or call from the wrong thread,
//! so none of them holds a reference to the connection. [`scope`] installs the request's
//! [`RequestIo`] in a thread-local slot for exactly the duration of the app call (restored on
//! unwinding too), and [`with_request`] lends it out under a `RefCell` borrow. Every request
//! gets a process-unique generation, so an object from an earlier request (or another thread)
//! is refused instead of touching the wrong connection.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use ruwsgi_plugin::{AsyncIo, Outcome, Park, RequestIo, ResponseError};

/// What the Python side learnt about one request while it ran.
#[derive(Debug, Default)]
pub(crate) struct RequestState {
    /// Process-unique id of this request (see [`next_generation`]).
    pub generation: u64,
    /// Requests this core completed before this one (`uwsgi.request_id()`).
    pub request_id: u64,
    /// Release the interpreter around writes (several cores share it).
    pub detach_io: bool,
    /// `start_response` was called.
    pub started: bool,
    /// The app's response cannot be sent as given (bad status/header, too long): 500 if
    /// the head is still unsent, else the connection is closed.
    pub response_error: Option<ResponseError>,
    /// A write to the client failed: it went away.
    pub client_gone: bool,
    /// `uwsgi.disconnect()` was called.
    pub disconnected: bool,
    /// Reading the body failed; the connection's framing is lost.
    pub body_error: bool,
    /// An async core with a suspend engine serves it: its I/O may switch to another core,
    /// so the interpreter is never released around it.
    pub suspendable: bool,
}

impl RequestState {
    /// Sort a failed response operation: the client's fault or the app's.
    pub fn record(&mut self, err: ResponseError) {
        if err.is_app_error() {
            if self.response_error.is_none() {
                self.response_error = Some(err);
            }
        } else {
            self.client_gone = true;
        }
    }
}

struct Slot {
    state: RequestState,
    /// Valid while the slot is installed: [`scope`] holds the `&mut` it came from for
    /// exactly that long.
    io: NonNull<dyn RequestIo + 'static>,
}

thread_local! {
    /// The request this thread is serving. A stack in effect: [`scope`] saves and restores
    /// the previous occupant, so a nested scope (async cores later) cannot leak a pointer.
    static SLOT: RefCell<Option<Slot>> = const { RefCell::new(None) };
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A new process-unique request generation (never 0).
pub(crate) fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Put the previous occupant back when the scope ends, even by unwinding.
struct Restore {
    prev: Option<Option<Slot>>,
}

impl Restore {
    fn finish(mut self) -> RequestState {
        let prev = self.prev.take().unwrap_or(None);
        let cur = SLOT.with(|s| s.replace(prev));
        cur.map(|slot| slot.state).unwrap_or_default()
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(prev) = self.prev.take() {
            SLOT.with(|s| {
                if let Ok(mut b) = s.try_borrow_mut() {
                    *b = prev;
                }
            });
        }
    }
}

/// Run `f` with `io` installed as this thread's current request; returns `f`'s result and
/// the request's final state.
#[allow(unsafe_code)]
pub(crate) fn scope<'io, R>(
    io: &'io mut dyn RequestIo,
    state: RequestState,
    f: impl FnOnce() -> R,
) -> (R, RequestState) {
    let ptr: NonNull<dyn RequestIo + 'io> = NonNull::from(io);
    // SAFETY: only the trait object's lifetime bound changes (same layout). The pointer is
    // reachable only through SLOT, and `Restore` removes it before this function returns or
    // unwinds, while the `&'io mut` it came from is still borrowed by this call.
    let io: NonNull<dyn RequestIo + 'static> = unsafe { std::mem::transmute(ptr) };
    let prev = SLOT.with(|s| s.replace(Some(Slot { state, io })));
    let restore = Restore { prev: Some(prev) };
    let out = f();
    (out, restore.finish())
}

/// Lend the current request to `f`. Fails when no request is in flight on this thread, or
/// when called re-entrantly.
#[allow(unsafe_code)]
pub(crate) fn with_request<R>(
    f: impl FnOnce(&mut RequestState, &mut dyn RequestIo) -> R,
) -> PyResult<R> {
    SLOT.with(|s| {
        let mut b = s
            .try_borrow_mut()
            .map_err(|_| PyRuntimeError::new_err("request object used re-entrantly"))?;
        if let Some(slot) = b.as_mut() {
            // SAFETY: the slot is installed only inside `scope`, which keeps the original
            // `&mut dyn RequestIo` borrowed (so nobody else uses it) and removes the pointer
            // before returning. The RefCell borrow makes this the only live reference.
            let io = unsafe { slot.io.as_mut() };
            return Ok(f(&mut slot.state, io));
        }
        drop(b);
        // Async mode keeps no sync slot: the request is the running core's.
        with_async_request(f)
    })
}

/// One async core's request as the Python side holds it between the core's runs.
#[derive(Default)]
pub(crate) struct CoreSlot {
    /// The request's state and connection. Each operation takes them out and puts them
    /// back, so a core that suspends inside one (a write on a full socket) owns them
    /// meanwhile and no borrow outlives a switch. Absent between requests.
    pub state: Option<RequestState>,
    pub io: Option<Box<dyn AsyncIo>>,
    /// What the core asked to wait for since it last ran (`wait_fd_*`, `async_sleep`).
    pub park: Park,
    /// The descriptor that woke the core last; -1 after a timeout or a plain yield.
    pub ready_fd: i32,
    /// The core's last wait ended by its timeout.
    pub timed_out: bool,
    /// The request is over (set by the core before it goes back to the loop).
    pub done: Option<Outcome>,
}

/// The async cores of this thread (async mode only).
pub(crate) struct AsyncCores {
    /// The core running now (`None` in the loop, between cores).
    pub current: Option<u16>,
    /// A core greenlet is running (suspending is possible), as opposed to the loop
    /// driving a generator.
    pub in_greenlet: bool,
    /// The loop's greenlet, which `suspend()` switches to (greenlet engine only).
    pub hub: Option<Py<PyAny>>,
    pub slots: Vec<CoreSlot>,
}

thread_local! {
    /// Set while this thread runs async cores.
    static ASYNC: RefCell<Option<AsyncCores>> = const { RefCell::new(None) };
}

/// Make this thread an async one with `cores` cores (and `hub` for the greenlet engine).
pub(crate) fn async_install(cores: usize, hub: Option<Py<PyAny>>) {
    let slots = (0..cores)
        .map(|_| CoreSlot {
            ready_fd: -1,
            ..CoreSlot::default()
        })
        .collect();
    let prev = ASYNC.with(|a| {
        a.replace(Some(AsyncCores {
            current: None,
            in_greenlet: false,
            hub,
            slots,
        }))
    });
    drop(prev);
}

/// This thread no longer runs async cores; what they held is returned (dropped by the
/// caller while attached).
pub(crate) fn async_remove() -> Option<AsyncCores> {
    ASYNC.with(|a| a.try_borrow_mut().ok().and_then(|mut a| a.take()))
}

/// Run `f` on this thread's async cores; `None` outside async mode (or re-entrantly).
/// Never switch greenlets inside `f`.
pub(crate) fn with_async<R>(f: impl FnOnce(&mut AsyncCores) -> R) -> Option<R> {
    ASYNC.with(|a| a.try_borrow_mut().ok()?.as_mut().map(f))
}

/// True inside a core greenlet: I/O there may switch to another core, so the interpreter
/// must not be released around it.
pub(crate) fn in_core_greenlet() -> bool {
    with_async(|a| a.in_greenlet).unwrap_or(false)
}

/// As [`with_async`], on the running core's slot (with its number).
pub(crate) fn with_current_core<R>(f: impl FnOnce(u16, &mut CoreSlot) -> R) -> Option<R> {
    with_async(|a| {
        let k = a.current?;
        a.slots.get_mut(usize::from(k)).map(|slot| f(k, slot))
    })
    .flatten()
}

/// The running async core's request, lent to `f` with no borrow held meanwhile (`f` may
/// suspend the core).
fn with_async_request<R>(
    f: impl FnOnce(&mut RequestState, &mut dyn RequestIo) -> R,
) -> PyResult<R> {
    let taken = with_current_core(|k, slot| match (slot.state.take(), slot.io.take()) {
        (Some(st), Some(io)) => Ok((k, st, io)),
        (st, io) => {
            let reentrant = st.is_some() || io.is_some();
            slot.state = st;
            slot.io = io;
            Err(reentrant)
        }
    });
    let (k, mut st, mut io) = match taken {
        Some(Ok(t)) => t,
        Some(Err(true)) => {
            return Err(PyRuntimeError::new_err("request object used re-entrantly"));
        }
        _ => {
            return Err(PyRuntimeError::new_err(
                "no request in progress on this thread",
            ))
        }
    };
    let r = f(&mut st, io.request_io());
    let back = with_async(|a| {
        if let Some(slot) = a.slots.get_mut(usize::from(k)) {
            slot.state = Some(st);
            slot.io = Some(io);
        }
    });
    if back.is_none() {
        // The cores were torn down while this one was suspended: its request is gone.
        return Err(PyRuntimeError::new_err("the async core was stopped"));
    }
    Ok(r)
}

/// As [`with_request`], for an object bound to the request of generation `generation`: any
/// other (finished, or another thread's) request raises `ValueError`.
pub(crate) fn with_request_of<R>(
    generation: u64,
    f: impl FnOnce(&mut RequestState, &mut dyn RequestIo) -> R,
) -> PyResult<R> {
    let mut f = Some(f);
    let out = with_request(|st, io| {
        if st.generation != generation {
            return None;
        }
        f.take().map(|f| f(st, io))
    });
    match out {
        Ok(Some(r)) => Ok(r),
        _ => Err(PyValueError::new_err(
            "I/O operation on a finished request (or from another thread)",
        )),
    }
}
