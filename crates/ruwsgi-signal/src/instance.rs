//! [`Signals`]: the signal framework of one instance, as every process uses it. Created by
//! the master before the first fork (the tables and sockets it holds are then shared by
//! every child), handed to the language plugins through their host and to the master's
//! loop, the workers, mules and spoolers.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ruwsgi_config::{CronSpec, SignalSettings};
use ruwsgi_proto::channel::{ChildRequest, MasterMessage};
use ruwsgi_sys::log_line;

use crate::alarm_queue::{AlarmError, AlarmQueue};
use crate::mules::Inbox;
use crate::registry::{AddError, Registrations};
use crate::remote::{RemoteError, RemoteSignals};
use crate::sockets::{send_packet, try_recv, try_recv_signal, Sockets};
use crate::table::{Handlers, RegisterError, SignalHandler, SignalTable};

/// Which process calls: what it may register and where its signals arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The master (apps imported before the first fork).
    Master,
    /// Worker N.
    Worker(u32),
    /// Mule N.
    Mule(u32),
    /// Spooler N.
    Spooler(u32),
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// Mules and spoolers cannot register handlers (they run the master's).
    #[error("only the master and workers can register signal handlers")]
    NotAllowed,
    /// The table refused it.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// No channel to the master (called in the master itself, or the master is gone).
    #[error("no channel to the master: {0}")]
    NoChannel(io::Error),
}

/// The signal framework of one instance.
pub struct Signals {
    table: SignalTable,
    handlers: Handlers,
    registrations: Registrations,
    sockets: Sockets,
    remote: RemoteSignals,
    /// This process's command channel to the master (`None` in the master).
    channel: fn() -> Option<BorrowedFd<'static>>,
    mule_msg_recv_size: usize,
    mule_files: Vec<Option<String>>,
    /// The alarm queue (`None` without alarms).
    alarms: Option<AlarmQueue>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("sockets", &self.sockets)
            .finish_non_exhaustive()
    }
}

impl Signals {
    /// Map the tables and make the sockets for `mules` mules (what each was given by
    /// `mule = ...`, `None` for a plain one), before the first fork. `channel` gives the
    /// calling process's command channel to the master; `timeout` bounds remote signals.
    pub fn new(
        settings: &SignalSettings,
        mule_files: Vec<Option<String>>,
        channel: fn() -> Option<BorrowedFd<'static>>,
        timeout: Duration,
    ) -> io::Result<Signals> {
        let farms: Vec<(String, Vec<u32>)> = settings
            .farms
            .iter()
            .map(|f| (f.name.clone(), f.mules.clone()))
            .collect();
        Ok(Signals {
            table: SignalTable::new()?,
            handlers: Handlers::new(),
            registrations: Registrations::new()?,
            sockets: Sockets::new(
                mule_files.len() as u32,
                &farms,
                settings.signal_bufsize as usize,
                settings.mule_msg_size as usize,
            )?,
            remote: RemoteSignals::new(timeout),
            channel,
            mule_msg_recv_size: settings.mule_msg_recv_size.max(1) as usize,
            mule_files,
            alarms: if settings.alarms.is_empty() {
                None
            } else {
                Some(AlarmQueue::new(
                    settings.alarms.iter().map(|a| a.name.clone()).collect(),
                    usize::try_from(settings.alarm_msg_size).unwrap_or(usize::MAX),
                )?)
            },
        })
    }

    /// The alarm queue (`None` when no alarm is configured).
    pub fn alarms(&self) -> Option<&AlarmQueue> {
        self.alarms.as_ref()
    }

    /// Raise alarm `name` with `msg` from any process (`uwsgi.alarm`): queued for the
    /// master, which runs it. Refused without alarms, for an unknown alarm, a message
    /// longer than `alarm-msg-size` or a full queue.
    pub fn alarm(&self, name: &str, msg: &[u8]) -> Result<(), AlarmError> {
        self.alarms
            .as_ref()
            .ok_or(AlarmError::NoAlarms)?
            .raise(name, msg)
    }

    /// The shared table of registered numbers.
    pub fn table(&self) -> &SignalTable {
        &self.table
    }

    /// The shared list of timers, crons and file monitors for the master.
    pub fn registrations(&self) -> &Registrations {
        &self.registrations
    }

    /// The delivery sockets and mule queues.
    pub fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    /// `mule-msg-recv-size`.
    pub fn mule_msg_recv_size(&self) -> usize {
        self.mule_msg_recv_size
    }

    /// What `mule = ...` gave mule `id` (`None`: a plain mule, or no such mule).
    pub fn mule_file(&self, id: u32) -> Option<&str> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.mule_files.get(i)?.as_deref()
    }

    /// Register `handler` for `num`, delivered to `target`, by `caller` (`modifier1`: the
    /// handler's plugin). Mules and spoolers cannot register.
    pub fn register(
        &self,
        caller: Caller,
        num: u8,
        target: &str,
        modifier1: u8,
        handler: Arc<dyn SignalHandler>,
    ) -> Result<(), SignalError> {
        let (worker, by_master) = match caller {
            Caller::Master => (0, true),
            Caller::Worker(id) => (id, false),
            Caller::Mule(_) | Caller::Spooler(_) => return Err(SignalError::NotAllowed),
        };
        self.table
            .register(num, target, worker, modifier1, by_master)?;
        self.handlers.set(num, handler);
        Ok(())
    }

    /// Whether this process has a handler for `num`.
    pub fn has_handler(&self, num: u8) -> bool {
        self.handlers.has(num)
    }

    /// Ask the master to route `num` (from a child: over its channel).
    pub fn raise(&self, num: u8) -> Result<(), SignalError> {
        let fd = (self.channel)()
            .ok_or_else(|| SignalError::NoChannel(io::ErrorKind::NotConnected.into()))?;
        send_packet(fd, ChildRequest::Signal(num).encode().as_bytes()).map_err(|e| {
            SignalError::NoChannel(match e {
                crate::sockets::SendError::Io(e) => e,
                other => io::Error::other(other.to_string()),
            })
        })
    }

    /// Raise `num` on another node (modifier1 110).
    pub fn raise_remote(&self, node: &str, num: u8) -> Result<(), RemoteError> {
        self.remote.raise(node, num)
    }

    /// Run this process's handler for `num`; a missing handler or a failure is logged as
    /// `error managing signal N on WHO`. True when the handler ran and succeeded.
    pub fn dispatch(&self, num: u8, who: &str) -> bool {
        match self.handlers.get(num) {
            Some(h) => match h.handle(num) {
                Ok(()) => true,
                Err(why) => {
                    log_line(&format!("error managing signal {num} on {who}: {why}"));
                    false
                }
            },
            None => {
                log_line(&format!(
                    "error managing signal {num} on {who}: no handler in this process"
                ));
                false
            }
        }
    }

    /// [`Self::dispatch`] under a harakiri deadline: with a `row` and a non-zero `limit`,
    /// the handler's run is written into the row (as a request would be: "signal N"), so
    /// the master kills the process if the handler runs past `limit`.
    /// `slot` (the process's scoreboard row) counts the signal for the stats.
    pub fn dispatch_guarded(
        &self,
        num: u8,
        who: &str,
        slot: Option<&ruwsgi_shm::WorkerSlot>,
        row: Option<&ruwsgi_shm::CoreSlot>,
        limit: Duration,
    ) -> bool {
        if let Some(slot) = slot {
            slot.count_signal();
        }
        let row = row.filter(|_| !limit.is_zero());
        if let Some(row) = row {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let digits = num.to_string();
            row.request_began(
                now_ms,
                now_ms.saturating_add(limit.as_millis() as u64),
                &[b"signal ", digits.as_bytes()],
            );
        }
        let ok = self.dispatch(num, who);
        if let Some(row) = row {
            row.request_ended();
        }
        ok
    }

    /// Tell the master its tables gained entries (no-op in the master itself, which reads
    /// them on its next loop turn).
    fn nudge(&self) {
        if let Some(fd) = (self.channel)() {
            let _ = send_packet(fd, ChildRequest::Scheduled.encode().as_bytes());
        }
    }

    /// Ask the master to route `num` every `period`. An identical timer (same number and
    /// period) already there is kept instead of doubled.
    pub fn add_timer(&self, num: u8, period: Duration) -> Result<(), AddError> {
        self.registrations.add_timer(num, period)?;
        self.nudge();
        Ok(())
    }

    /// Ask the master to route `num` every `secs` seconds, `iterations` times (0: forever).
    pub fn add_rb_timer(&self, num: u8, secs: u64, iterations: u64) -> Result<(), AddError> {
        self.registrations.add_rb_timer(num, secs, iterations)?;
        self.nudge();
        Ok(())
    }

    /// Ask the master to route `num` on the minutes `spec` matches.
    pub fn add_cron(&self, num: u8, spec: CronSpec) -> Result<(), AddError> {
        self.registrations.add_cron(num, spec)?;
        self.nudge();
        Ok(())
    }

    /// Ask the master to route `num` whenever `path` changes.
    pub fn add_file_monitor(&self, num: u8, path: &Path) -> Result<(), AddError> {
        self.registrations.add_file_monitor(num, path)?;
        self.nudge();
        Ok(())
    }

    /// Mule `id`'s inbox (its queues, and its signal sources).
    pub fn inbox(&self, id: u32) -> Inbox<'_> {
        Inbox::new(&self.sockets, id, (self.channel)())
    }

    /// The shared signal sockets `caller` reads besides its channel.
    pub fn shared_sources(&self, caller: Caller) -> Vec<BorrowedFd<'_>> {
        match caller {
            Caller::Master => Vec::new(),
            Caller::Worker(_) => vec![self.sockets.any_worker.recv_fd()],
            Caller::Spooler(_) => vec![self.sockets.spooler.recv_fd()],
            Caller::Mule(id) => std::iter::once(self.sockets.any_mule.recv_fd())
                .chain(self.sockets.farms_of(id).map(|f| f.signals.recv_fd()))
                .collect(),
        }
    }

    /// Wait up to `timeout` (`None`: forever) for the next signal for `caller` on its
    /// channel and shared sockets, and return its number (`Ok(None)`: the time ran out).
    /// The master's end-of-file is an error (`BrokenPipe`).
    pub fn wait(&self, caller: Caller, timeout: Option<Duration>) -> io::Result<Option<u8>> {
        let channel = (self.channel)();
        let shared = self.shared_sources(caller);
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let left = match deadline {
                Some(d) => PollTimeout::try_from(
                    d.saturating_duration_since(std::time::Instant::now())
                        .as_millis()
                        .min(i32::MAX as u128) as i32,
                )
                .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            let mut fds: Vec<PollFd<'_>> = channel
                .iter()
                .chain(shared.iter())
                .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, left) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            drop(fds);
            if let Some(fd) = channel {
                let mut packet = [0u8; ruwsgi_proto::channel::MAX_MESSAGE + 1];
                match try_recv(fd, &mut packet)? {
                    Some(0) => return Err(io::ErrorKind::BrokenPipe.into()),
                    Some(n) => {
                        if let Ok(MasterMessage::Signal(num)) = MasterMessage::decode(&packet[..n])
                        {
                            return Ok(Some(num));
                        }
                    }
                    None => {}
                }
            }
            for fd in &shared {
                if let Some(num) = try_recv_signal(*fd) {
                    return Ok(Some(num));
                }
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(None);
            }
        }
    }
}
