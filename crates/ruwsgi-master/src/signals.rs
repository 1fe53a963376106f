//! Where the master's commands come from: the [`SignalSource`] trait (STYLE R4) and its real
//! implementation over a self-pipe, [`UnixSignals`].
//!
//! Tests inject reload and stop requests through their own source; the real one maps Unix
//! signals to [`MasterCommand`]s as the crate docs' signal table says.

use std::io;
use std::os::fd::BorrowedFd;

use ruwsgi_config::Settings;
use ruwsgi_sys::{Signal, SignalPipe};

/// What the master is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterCommand {
    /// Workers finish their requests and exit; then re-exec (preload) or respawn (lazy).
    GracefulReload,
    /// Like a graceful reload, but workers are told to exit at once (`SIGTERM`).
    BrutalReload,
    /// Workers finish their requests and exit; then the master exits 0.
    GracefulStop,
    /// Workers exit at once (`SIGTERM`, `SIGKILL` after a short grace); the master exits 0.
    ImmediateStop,
    /// A child changed state (`SIGCHLD`): reap now.
    ChildEvent,
    /// Workers finish their requests and are respawned (the master stays as it is).
    ReloadWorkers,
    /// Workers exit at once and are respawned.
    BrutalReloadWorkers,
    /// Workers are replaced one at a time, each once the previous one's replacement
    /// accepts connections.
    ChainReload,
}

/// A command and where it came from (`SIGHUP`, `test`, ...), for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    /// What to do.
    pub command: MasterCommand,
    /// Its origin, as logged.
    pub origin: &'static str,
}

/// A source of master commands, polled by the master loop.
pub trait SignalSource {
    /// Descriptors to poll for readability; the loop calls [`SignalSource::pending`] after
    /// any of them (or its timeout) fires.
    fn fds(&self) -> Vec<BorrowedFd<'_>>;
    /// Commands received since the last call, in order.
    fn pending(&mut self) -> Vec<Incoming>;
    /// In a freshly forked worker: release every resource (fds, handler targets) the source
    /// holds. The master resets the signal dispositions itself afterwards.
    fn close_in_child(&mut self);
}

/// Signals the master handles; a forked worker resets these to their defaults.
pub const MASTER_SIGNALS: [Signal; 5] = [
    Signal::SIGHUP,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGCHLD,
];

/// The real source: handlers for [`MASTER_SIGNALS`] writing to a [`SignalPipe`].
#[derive(Debug)]
pub struct UnixSignals {
    /// `None` once closed in a child.
    pipe: Option<SignalPipe>,
    /// What `SIGTERM` means under the settings (`die-on-term`, `sigterm-reload`).
    sigterm: MasterCommand,
}

impl UnixSignals {
    /// Install the master's handlers. Call before [`crate::run`], which unblocks signals.
    pub fn install(settings: &Settings) -> io::Result<UnixSignals> {
        Ok(UnixSignals {
            pipe: Some(SignalPipe::install(&MASTER_SIGNALS)?),
            sigterm: sigterm_command(settings),
        })
    }
}

/// `SIGTERM`: `sigterm-reload` → brutal reload (uWSGI 2.0); else `die-on-term` (default) →
/// graceful stop; else → immediate stop (uWSGI 2.1).
pub fn sigterm_command(settings: &Settings) -> MasterCommand {
    if settings.processes.sigterm_reload {
        MasterCommand::BrutalReload
    } else if settings.processes.die_on_term {
        MasterCommand::GracefulStop
    } else {
        MasterCommand::ImmediateStop
    }
}

impl SignalSource for UnixSignals {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.pipe.iter().map(SignalPipe::fd).collect()
    }

    fn pending(&mut self) -> Vec<Incoming> {
        let Some(pipe) = &self.pipe else {
            return Vec::new();
        };
        pipe.drain()
            .into_iter()
            .filter_map(|sig| {
                let command = match sig {
                    Signal::SIGHUP => MasterCommand::GracefulReload,
                    Signal::SIGTERM => self.sigterm,
                    Signal::SIGINT | Signal::SIGQUIT => MasterCommand::ImmediateStop,
                    Signal::SIGCHLD => MasterCommand::ChildEvent,
                    _ => return None,
                };
                Some(Incoming {
                    command,
                    origin: sig.as_str(),
                })
            })
            .collect()
    }

    fn close_in_child(&mut self) {
        self.pipe = None;
    }
}
