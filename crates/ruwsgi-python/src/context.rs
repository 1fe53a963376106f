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
use pyo3::PyResult;
use ruwsgi_plugin::{RequestIo, ResponseError};

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
        let slot = b
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("no request in progress on this thread"))?;
        // SAFETY: the slot is installed only inside `scope`, which keeps the original
        // `&mut dyn RequestIo` borrowed (so nobody else uses it) and removes the pointer
        // before returning. The RefCell borrow makes this the only live reference.
        let io = unsafe { slot.io.as_mut() };
        Ok(f(&mut slot.state, io))
    })
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
