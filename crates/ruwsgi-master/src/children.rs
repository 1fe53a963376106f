//! The master's children: their kinds and one `Slot` per child process.
//!
//! Design decision: every child, whatever its kind, lives in one slot vector (workers first,
//! then mules), so the loop's deadlines and channels are keyed by one slot index; the kind
//! decides the main the child runs, the signals that stop it and its respawn rule
//! ([`ChildKind`]).

use std::time::Instant;

use ruwsgi_sys::{Pid, Signal};

/// What a child process is. Each kind has its own main ([`crate::MasterConfig`]), its own
/// scoreboard and ids (1-based, per kind) and its own respawn rule:
///
/// - **Worker**: serves requests. A crash is respawned through the respawn throttle; a
///   recycle (`max-requests`: exit code 17, or its own replacement request) at once. On a
///   reload it is replaced by the next generation; `lazy-apps` + `need-app` and exit code 22
///   stop the instance.
/// - **Mule**: runs background work (a script, or a loop waiting on its channel and
///   signals). Whenever it exits outside a reload or a stop (a crash, or its script
///   returning) it is respawned, through the throttle. Reloads and stops treat it like a
///   worker (`SIGHUP`, or `SIGTERM` when immediate).
/// - **Daemon** (`attach-daemon`): an outside program (`/bin/sh -c COMMAND`), exec'd right
///   after fork. Respawned through the throttle whenever it exits outside a reload or a
///   stop; reloads and stops send it `SIGTERM` (graceful or not), `SIGKILL` at the deadline.
/// - **Spooler**: runs spooled tasks. Graceful reloads and stops send it `SIGHUP` (it
///   finishes the task in progress, then exits); immediate ones `SIGKILL` it (the
///   interrupted task stays on disk and runs again). Respawned through the throttle when it
///   dies, at once when it recycles (`spooler-max-tasks`, exit code 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildKind {
    /// A request-serving worker.
    Worker,
    /// A mule.
    Mule,
    /// A spooler (`spooler DIR`).
    Spooler,
    /// An attached daemon (`attach-daemon`).
    Daemon,
}

impl ChildKind {
    /// As written in log lines (`worker`, `mule`, `spooler`).
    pub fn name(self) -> &'static str {
        match self {
            ChildKind::Worker => "worker",
            ChildKind::Mule => "mule",
            ChildKind::Spooler => "spooler",
            ChildKind::Daemon => "daemon",
        }
    }

    /// The signal that stops a child of this kind on a reload or a stop: graceful (`SIGHUP`:
    /// finish what it is doing) or immediate (`SIGTERM`; `SIGKILL` for spoolers, whose
    /// task must not be cut by a handler half-way).
    pub fn stop_signal(self, immediate: bool) -> Signal {
        match (self, immediate) {
            (ChildKind::Spooler, true) => Signal::SIGKILL,
            (ChildKind::Daemon, _) => Signal::SIGTERM,
            (_, true) => Signal::SIGTERM,
            (_, false) => Signal::SIGHUP,
        }
    }
}

/// A stop order sent to one child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StopOrder {
    /// When it gets `SIGKILL` if still alive (also registered as a kill deadline).
    pub deadline: Instant,
}

/// The master's view of one child: which kind and id, and the process now filling it.
#[derive(Debug)]
pub(crate) struct Slot {
    pub kind: ChildKind,
    /// 1-based id within its kind.
    pub id: u32,
    pub pid: Option<Pid>,
    pub generation: u64,
    pub spawned_at: Option<Instant>,
    pub stop: Option<StopOrder>,
    /// Emptied by an unexpected death: its respawn goes through the throttle.
    pub crashed: bool,
    /// Spawned at least once by this master (log "Respawned" instead of "spawned").
    pub ever_spawned: bool,
    /// Being replaced at its own request (`ReloadMe`): its exit is a recycle and it is
    /// respawned at once.
    pub recycle: bool,
    /// Being killed by harakiri: its exit is logged as such and it is respawned at once.
    pub harakiri: bool,
}

impl Slot {
    /// An empty slot for child `id` of `kind`.
    pub fn new(kind: ChildKind, id: u32) -> Slot {
        Slot {
            kind,
            id,
            pid: None,
            generation: 0,
            spawned_at: None,
            stop: None,
            crashed: false,
            ever_spawned: false,
            recycle: false,
            harakiri: false,
        }
    }

    /// `worker 2`, `mule 1`: how logs name it.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.name(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_their_stop_signals_and_names() {
        assert_eq!(ChildKind::Worker.stop_signal(false), Signal::SIGHUP);
        assert_eq!(ChildKind::Mule.stop_signal(true), Signal::SIGTERM);
        assert_eq!(ChildKind::Spooler.stop_signal(false), Signal::SIGHUP);
        assert_eq!(ChildKind::Spooler.stop_signal(true), Signal::SIGKILL);
        assert_eq!(ChildKind::Daemon.stop_signal(false), Signal::SIGTERM);
        assert_eq!(Slot::new(ChildKind::Daemon, 2).label(), "daemon 2");
        assert_eq!(Slot::new(ChildKind::Mule, 3).label(), "mule 3");
    }
}
