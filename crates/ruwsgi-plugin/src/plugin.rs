//! What a language implements.

use std::path::Path;
use std::sync::Arc;

use ruwsgi_config::PluginView;

use crate::async_core::AsyncCore;
use crate::error::PluginError;
use crate::host::{Host, ProcessRole, SpoolerOutcome, Task};
use crate::io::{Request, RequestIo};

/// The result of a fork, as the plugin's fork wrapper passes it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkOutcome {
    /// In the parent; the child's pid.
    Parent(i32),
    /// In the new child.
    Child,
    /// fork failed with this errno.
    Failed(i32),
}

/// How a request ended, for the worker's counters and its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The app raised (or returned something invalid); a 500 was sent if the head was not.
    pub exception: bool,
    /// The connection must be closed after this request (client gone, response
    /// close-delimited, `disconnect()` called, body not fully read).
    pub close: bool,
}

/// A language plugin. One instance per process; created in the master before fork.
///
/// Order of calls: [`init`](Self::init) in the master, then [`load_apps`](Self::load_apps)
/// in the master (preload) or in each worker after fork (lazy), [`around_fork`](Self::around_fork)
/// for every fork, [`post_fork`](Self::post_fork) in each child, then
/// [`run_core`](Self::run_core) once per core thread in workers (or [`run_mule`](Self::run_mule)
/// in a mule that runs a script), and [`at_exit`](Self::at_exit) when a
/// process leaves.
pub trait LanguagePlugin: Send + Sync {
    /// Short name (`python`).
    fn name(&self) -> &'static str;
    /// Start the runtime. Runs once, in the master, before privileges are dropped (no app
    /// code may run here). The plugin's own settings section comes with its constructor;
    /// `server` is what every plugin may read of the rest.
    fn init(&self, server: PluginView<'_>, host: Arc<dyn Host>) -> Result<(), PluginError>;
    /// Import the configured apps; returns how many loaded. `need-app` is the caller's policy.
    fn load_apps(&self) -> Result<usize, PluginError>;
    /// Run `fork` in the state the runtime needs a fork to happen in (for CPython: attached,
    /// between `PyOS_BeforeFork` and `PyOS_AfterFork_*`).
    fn around_fork(&self, fork: &mut dyn FnMut() -> ForkOutcome) -> ForkOutcome;
    /// In a new child, after the runtime's own at-fork work: user post-fork hooks.
    fn post_fork(&self, role: ProcessRole);
    /// Run `body` on this thread with a fresh core attached to the runtime for the whole
    /// call (CPython: attached once for the thread's life).
    fn run_core(&self, core_id: u16, body: &mut dyn FnMut(&mut dyn Core));
    /// Async mode (`async N`): run `body` on this thread with the worker's `cores` async
    /// cores, attached to the runtime for the whole call. The default: this plugin has no
    /// async mode.
    fn run_async(
        &self,
        cores: u16,
        body: &mut dyn FnMut(&mut dyn AsyncCore),
    ) -> Result<(), PluginError> {
        let _ = (cores, body);
        Err(PluginError::Unsupported {
            plugin: self.name(),
            feature: "async mode",
        })
    }
    /// The process is leaving: user `atexit` hooks.
    fn at_exit(&self);
    /// In a mule (after [`post_fork`](Self::post_fork)): run `script` as the main program
    /// and return the mule's exit code once it returns (the master then respawns the
    /// mule). The default: this plugin has no mule support.
    fn run_mule(&self, script: &Path) -> Result<i32, PluginError> {
        let _ = script;
        Err(PluginError::Unsupported {
            plugin: self.name(),
            feature: "mule scripts",
        })
    }
    /// In a mule: call `spec` (`package.module:function`) with no arguments and return the
    /// mule's exit code once it returns (the master then respawns the mule). The default:
    /// no support.
    fn run_mule_callable(&self, spec: &str) -> Result<i32, PluginError> {
        let _ = spec;
        Err(PluginError::Unsupported {
            plugin: self.name(),
            feature: "mule callables",
        })
    }
    /// In a plain mule: hand a message it received to the language's message hooks
    /// (`uwsgi.mule_msg_hook`, hooks installed with `install_mule_msg_hook`); false when
    /// no hook took it (the mule then logs the message's size). The default: no hooks.
    fn mule_message(&self, msg: &[u8]) -> bool {
        let _ = msg;
        false
    }
    /// In a spooler (after [`post_fork`](Self::post_fork)), once before its first task:
    /// import `module` (`spooler-import`: a module name, or a `.py` file). The default: no
    /// support.
    fn spooler_import(&self, module: &str) -> Result<(), PluginError> {
        let _ = module;
        Err(PluginError::Unsupported {
            plugin: self.name(),
            feature: "spooler-import",
        })
    }
    /// In a spooler: run the task at `path` (already parsed, and locked by the caller) with
    /// the language's spooler function, and say what became of it. The default: no
    /// spooler function in this language, the task is not this plugin's
    /// ([`SpoolerOutcome::Ignore`]).
    fn run_spooler_task(&self, path: &Path, task: &Task) -> SpoolerOutcome {
        let _ = (path, task);
        SpoolerOutcome::Ignore
    }
}

/// One core: serves one request at a time on the thread that created it.
pub trait Core {
    /// Serve `req`: build the app's view, call it, write the response through `io`.
    /// Never panics on app input; app faults become a 500 and `exception: true`.
    fn handle(&mut self, req: &Request<'_>, io: &mut dyn RequestIo) -> Outcome;
    /// Run a blocking wait (the event loop's `epoll_wait`) with the runtime released, so
    /// other threads of the app can run meanwhile.
    fn blocking(&mut self, wait: &mut (dyn FnMut() + Send));
}
