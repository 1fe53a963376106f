//! Async mode (`async N`): N request cores multiplexed on a worker's one thread.
//!
//! The worker's loop owns the connections, the epoll set and the timers; the plugin owns
//! what runs (greenlets, generators). A request is handed to a free core with
//! [`AsyncCore::start`], together with the *ownership* of its connection ([`AsyncIo`]):
//! the plugin keeps it while the core is parked and gives it back when the request is
//! over ([`AsyncStep::Done`]). Between those, every time the core parks the plugin says
//! what it waits for ([`Park`]: file descriptors and a timeout), the loop watches them,
//! and [`AsyncCore::resume`] runs the core again with what woke it ([`Wake`]).
//!
//! Waits the server does on the app's behalf (a body read with no bytes yet, a response
//! write on a full socket) go through the plugin's [`SuspendFn`]: it parks the calling
//! core until the socket is ready instead of blocking the worker, when the plugin can
//! suspend from where it is called.

use std::any::Any;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use crate::io::{Request, RequestIo};
use crate::plugin::Outcome;

/// Which readiness a core waits for on a file descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable (or hung up).
    Read,
    /// Writable.
    Write,
}

/// What a parked core waits for. No descriptor and no timeout means "run me again on the
/// next pass" (a cooperative yield).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Park {
    /// Descriptors and the readiness wanted; the first that fires wakes the core and all
    /// of them are dropped.
    pub fds: Vec<(RawFd, Interest)>,
    /// Wake the core after this long if no descriptor fired first.
    pub timeout: Option<Duration>,
}

impl Park {
    /// Forget every wait (the value is reused between parks).
    pub fn clear(&mut self) {
        self.fds.clear();
        self.timeout = None;
    }

    /// True when the core only yielded.
    pub fn is_yield(&self) -> bool {
        self.fds.is_empty() && self.timeout.is_none()
    }
}

/// Why a parked core runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// This descriptor became ready.
    Fd(RawFd),
    /// Its timeout passed first.
    TimedOut,
    /// It only yielded (or its wait was cancelled): its turn came.
    Run,
}

/// Where a core stands after [`AsyncCore::start`] or [`AsyncCore::resume`].
pub enum AsyncStep {
    /// The request is over: counters and logging can follow, and the connection comes
    /// back (`None` only if the plugin lost it, after a fault: the worker then forgets
    /// the connection).
    Done(Outcome, Option<Box<dyn AsyncIo>>),
    /// The core is parked on what it filled in the [`Park`] it was given.
    Parked,
}

/// A connection lent to an async core for a whole request: a [`RequestIo`] the plugin
/// owns until it returns it in [`AsyncStep::Done`].
pub trait AsyncIo: RequestIo + Any {
    /// The same object as a plain [`RequestIo`].
    fn request_io(&mut self) -> &mut dyn RequestIo;
    /// Back to the worker's own type.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// Suspend the calling core until `fd` is readable (`false`) or writable (`true`), for at
/// most the timeout. `None` when the caller cannot be suspended from there (no suspend
/// engine, or not inside a core): the server then waits the blocking way. `Some(Ok(false))`
/// is a timeout.
pub type SuspendFn =
    fn(fd: BorrowedFd<'_>, writable: bool, timeout: Duration) -> Option<std::io::Result<bool>>;

/// The async cores of one worker, as the plugin runs them. Used from one thread only.
pub trait AsyncCore {
    /// Start serving `req` on the free core `core` (0-based, below the worker's `async`
    /// count). `park` is empty; on [`AsyncStep::Parked`] it holds what the core waits for.
    fn start(
        &mut self,
        core: u16,
        req: &Request<'_>,
        io: Box<dyn AsyncIo>,
        park: &mut Park,
    ) -> AsyncStep;
    /// Run a parked core again because of `wake`; `park` as for [`start`](Self::start).
    fn resume(&mut self, core: u16, wake: Wake, park: &mut Park) -> AsyncStep;
    /// How the server's own waits (body reads, writes) suspend a core, if the plugin can.
    fn suspender(&self) -> Option<SuspendFn>;
    /// Run a blocking wait (the loop's `epoll_wait`) with the runtime released.
    fn blocking(&mut self, wait: &mut (dyn FnMut() + Send));
}
