//! The uWSGI signal framework: one-byte signals (0-255) that processes raise and the master
//! routes to workers, mules, farms or spoolers, plus what raises them on its own (timers,
//! cron entries, file monitors) and the alarm rules over log lines.
//!
//! This crate is logic and shared-memory tables only; the master, workers and mules own the
//! processes, channels and event loops that use it.
//!
//! # Layout
//! - [`target`]: [`Target`], where a registered signal goes, parsed from its target string.
//! - [`table`]: [`SignalTable`], the shared table of registered numbers (target, modifier1,
//!   registering worker), and [`Handlers`], each process's own handlers.
//! - [`registry`]: [`Registrations`], the shared list of timers, crons and file monitors
//!   that processes ask the master to run.
//! - [`timers`]: [`Timers`], the master's periodic timers, driven by a clock passed in.
//! - [`cron`]: [`CronTable`], calendar entries checked once a minute.
//! - [`filemon`]: [`FileMonitors`], inotify watches that raise a signal on change.
//! - [`alarm`]: [`AlarmRules`] (which alarms a log line raises) and [`Throttle`]
//!   (`alarm-freq`); [`alarm_queue`]: [`AlarmQueue`], how any process raises an alarm
//!   for the master (`uwsgi.alarm`, the log master's matches).
//!
//! - [`sockets`]: [`sockets::Sockets`], the shared delivery sockets (any worker, any mule,
//!   spoolers, farms) and the mule message queues; [`mules`]: sending mule messages and a
//!   mule's inbox; [`remote`]: raising a signal on another node (modifier1 110).
//!
//! # Who writes what, who reads it
//! Both shared tables are mapped by the master before the first fork, so every worker, mule
//! and spooler inherits them.
//! - [`SignalTable`]: written by whoever registers a number (`uwsgi.register_signal`): the
//!   master while it loads apps before forking, or a worker loading its own (lazy apps).
//!   The first registration of a number fills its row for good; the master refuses to
//!   register a number twice, a worker's later registration leaves the row as it is. It is
//!   read by the master, which routes every raised signal by its row's target, and by any
//!   process answering `signal_registered`. Handlers are not shared: each process keeps its
//!   own in [`Handlers`] and runs them when a signal arrives on its channel.
//! - [`Registrations`]: appended by any process (`add_timer`, `add_rb_timer`, `add_cron`,
//!   `add_file_monitor`), under a robust process-shared lock; read only by the master, which
//!   keeps a [`Cursor`] and, when [`Registrations::generation`] moves, takes the new entries
//!   into its own [`Timers`], [`CronTable`] and [`FileMonitors`]. Entries are never
//!   removed: they last until the master re-executes.
//! - [`AlarmQueue`]: a socket pair made before the first fork when alarms are configured;
//!   any process sends `NAME\0MESSAGE` packets (`uwsgi.alarm`, the master's log thread),
//!   only the master reads them and runs the alarm.
//! - [`Timers`], [`CronTable`], [`FileMonitors`], [`AlarmRules`] and [`Throttle`] are
//!   private to the master.
#![warn(missing_docs)]

pub mod alarm;
pub mod alarm_queue;
pub mod cron;
pub mod filemon;
pub mod registry;
pub mod table;
pub mod target;
pub mod timers;

pub mod instance;
pub mod mules;
pub mod remote;
pub mod sockets;

pub use alarm::{AlarmRules, Throttle, ALARM_LOG_PREFIX};
pub use alarm_queue::{AlarmError, AlarmQueue, AlarmSender};
pub use cron::{CronAction, CronTable, Tm};
pub use filemon::FileMonitors;
pub use instance::{Caller, SignalError, Signals};
pub use registry::{
    AddError, Cursor, Registration, Registrations, TimerKind, MAX_ENTRIES, MAX_PATH,
};
pub use table::{Entry, Handlers, RegisterError, SignalHandler, SignalTable, MAX_TARGET};
pub use target::{Target, TargetError};
pub use timers::Timers;
