//! Alarms in the master: the configured alarms (`alarm NAME PLUGIN:ARGS`), what raises
//! them and what they do.
//!
//! Everything that raises an alarm ends in [`Master::raise_alarm`], on the master's loop:
//! - `uwsgi.alarm(name, msg)` from any process, and the log master's thread when a log line
//!   matches an `alarm-log` rule ([`crate::logmaster`]), send a packet on the alarm queue
//!   ([`ruwsgi_signal::AlarmQueue`]), which the loop watches ([`Watch::Alarms`]);
//! - `alarm-backlog`: the master found a listen queue full ([`crate::backlog`]);
//! - `alarm-segfault`: a child died of `SIGSEGV` (the loop's reaper).
//!
//! `alarm-freq` applies to each alarm ([`Throttle`]): a message identical to the last one
//! it sent less than `alarm-freq` ago is skipped. Then the plugin runs:
//! - `cmd:COMMAND`: `/bin/sh -c COMMAND` with the message (and a newline when it has none)
//!   on its stdin, read from an in-memory file, so a command that never reads cannot block
//!   the master. The loop reaps it like any child; one still running after
//!   [`COMMAND_LIMIT`] is killed, and at most [`MAX_COMMANDS`] run at once (further alarms
//!   are dropped, and said so in the log).
//! - `signal:N`: signal N is routed like any raised signal ([`Master::route_signal`]).
//! - `mule:N`: the message goes to mule N's queue (0, or a mule that does not exist: the
//!   shared queue any mule reads).
//! - `log:PREFIX`: the line `[ruwsgi-alarm NAME] ALARM: PREFIX MESSAGE`.
//!
//! Every line the alarm subsystem logs starts with [`ALARM_LOG_PREFIX`] and is written
//! straight to the real log (not through the log pipe), so an alarm never triggers
//! `alarm-log` rules by itself.
//!
//! Nothing here exists without `alarm` options: no queue, no watched descriptor, no log
//! pipe (the log pipe and its thread only exist with `alarm-log` rules).

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use ruwsgi_config::{AlarmPlugin, AlarmSpec, SignalSettings};
use ruwsgi_signal::mules::{MuleMsgError, MuleTarget};
use ruwsgi_signal::{AlarmRules, Signals, Throttle, ALARM_LOG_PREFIX};
use ruwsgi_sys::log::log_line_to;

use crate::logmaster::LogMaster;
use crate::master::{Deadline, Master, Watch};

/// A `cmd` alarm's command is killed once it has run this long.
pub(crate) const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// At most this many `cmd` alarm commands run at once.
pub(crate) const MAX_COMMANDS: usize = 16;
/// At most this many queued alarms are read per loop turn (the rest on the next turn).
const BATCH: usize = 256;
/// The receive buffer never needs more (a socket's buffer is smaller).
const MAX_PACKET: usize = 8 << 20;

/// A running `cmd` alarm command.
struct Command {
    alarm: String,
    deadline: Instant,
    killed: bool,
}

/// The master's alarm state (absent without alarms).
pub(crate) struct Alarms {
    framework: Arc<Signals>,
    specs: Vec<AlarmSpec>,
    rules: AlarmRules,
    throttle: Throttle,
    backlog: Vec<String>,
    segfault: Vec<String>,
    commands: HashMap<Pid, Command>,
    log_master: Option<LogMaster>,
    buf: Vec<u8>,
}

impl Alarms {
    /// The alarms of `settings`; `None` without alarms (or without the signal framework,
    /// whose queue they travel on).
    pub(crate) fn new(
        settings: &SignalSettings,
        framework: Option<&Arc<Signals>>,
    ) -> Option<Alarms> {
        let framework = framework?;
        let queue = framework.alarms()?;
        let rules = AlarmRules::new(&settings.alarm_log).unwrap_or_else(|e| {
            // The configuration compiled every expression already.
            ruwsgi_sys::log_line(&format!("{ALARM_LOG_PREFIX}] alarm-log rules ignored: {e}"));
            AlarmRules::default()
        });
        Some(Alarms {
            // A packet larger than the socket's buffer cannot be sent at all.
            buf: vec![0u8; queue.packet_size().min(MAX_PACKET) + 1],
            framework: framework.clone(),
            specs: settings.alarms.clone(),
            rules,
            throttle: Throttle::new(settings.alarm_freq),
            backlog: settings.alarm_backlog.clone(),
            segfault: settings.alarm_segfault.clone(),
            commands: HashMap::new(),
            log_master: None,
        })
    }

    /// Start the log master if there are `alarm-log` rules and it is not running. A
    /// failure is logged: logging then goes on as before, without log alarms.
    pub(crate) fn start_log_master(&mut self) {
        if self.rules.is_empty() || self.log_master.is_some() {
            return;
        }
        let Some(queue) = self.framework.alarms() else {
            return;
        };
        let started = queue
            .sender()
            .and_then(|sender| LogMaster::start(self.rules.clone(), sender));
        match started {
            Ok(m) => {
                let fds = if m.has_stdout() {
                    "stderr, stdout"
                } else {
                    "stderr"
                };
                self.log_master = Some(m);
                ruwsgi_sys::log_line(&format!(
                    "ruwsgi: log master started (alarm-log): every process logs through it ({fds})"
                ));
            }
            Err(e) => ruwsgi_sys::log_line(&format!(
                "{ALARM_LOG_PREFIX}] cannot start the log master, alarm-log rules are off: {e}"
            )),
        }
    }

    /// Stop the log master (fd 2 back to the real log, the pipe drained), if it runs.
    pub(crate) fn stop_log_master(&mut self) {
        if let Some(mut m) = self.log_master.take() {
            m.stop();
        }
    }

    /// Log `line` for alarm `name`, with the alarm prefix, to the real log (not through
    /// the log pipe).
    fn log(&self, name: &str, line: &str) {
        let line = format!("{ALARM_LOG_PREFIX} {name}] {line}");
        match &self.log_master {
            Some(m) => log_line_to(m.real_log(), &line),
            None => ruwsgi_sys::log_line(&line),
        }
    }
}

/// What an alarm does, decided before the master acts on it.
enum Action {
    Command(String),
    Signal(u8),
    Mule(u32),
    Log(String),
}

/// The message as a command's stdin: an in-memory file holding it (and a final newline).
fn message_stdin(msg: &[u8]) -> std::io::Result<Stdio> {
    let fd =
        nix::sys::memfd::memfd_create(c"ruwsgi-alarm", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(msg)?;
    if !msg.ends_with(b"\n") {
        file.write_all(b"\n")?;
    }
    file.rewind()?;
    Ok(Stdio::from(file))
}

/// The message as text for a log line: lossy UTF-8, without its final line ending.
fn message_text(msg: &[u8]) -> String {
    let msg = msg.strip_suffix(b"\n").unwrap_or(msg);
    let msg = msg.strip_suffix(b"\r").unwrap_or(msg);
    String::from_utf8_lossy(msg).into_owned()
}

impl Master {
    /// Watch the alarm queue (when there are alarms).
    pub(crate) fn watch_alarms(&mut self) {
        let Some(alarms) = self.alarms.as_ref() else {
            return;
        };
        let Some(queue) = alarms.framework.alarms() else {
            return;
        };
        match queue.recv_fd().try_clone_to_owned() {
            Ok(fd) => self.watched.insert(Watch::Alarms, fd),
            Err(e) => alarms.log("-", &format!("cannot watch the alarm queue: {e}")),
        }
    }

    /// The alarm queue is readable: run what it holds (at most [`BATCH`] this turn).
    pub(crate) fn on_alarm_queue(&mut self) {
        for _ in 0..BATCH {
            let Some(alarms) = self.alarms.as_mut() else {
                return;
            };
            let framework = alarms.framework.clone();
            let Some(queue) = framework.alarms() else {
                return;
            };
            let mut buf = std::mem::take(&mut alarms.buf);
            let got = match queue.try_recv(&mut buf) {
                Ok(Some((name, msg))) => Some((name.to_string(), msg.to_vec())),
                Ok(None) => None,
                Err(e) => {
                    alarms.log("-", &format!("cannot read the alarm queue: {e}"));
                    None
                }
            };
            if let Some(alarms) = self.alarms.as_mut() {
                alarms.buf = buf;
            }
            match got {
                Some((name, msg)) => self.raise_alarm(&name, &msg),
                None => return,
            }
        }
    }

    /// Raise alarm `name` with `msg`: throttled by `alarm-freq`, then run. Unknown names
    /// are ignored.
    pub(crate) fn raise_alarm(&mut self, name: &str, msg: &[u8]) {
        let now = self.clock.now();
        let Some(alarms) = self.alarms.as_mut() else {
            return;
        };
        let Some(spec) = alarms.specs.iter().find(|s| s.name == name) else {
            return;
        };
        let action = match &spec.plugin {
            AlarmPlugin::Cmd(c) => Action::Command(c.clone()),
            AlarmPlugin::Signal(n) => Action::Signal(*n),
            AlarmPlugin::Mule(id) => Action::Mule(*id),
            AlarmPlugin::Log(prefix) => Action::Log(prefix.clone()),
        };
        if !alarms.throttle.should_send(name, msg, now) {
            return;
        }
        match action {
            Action::Command(command) => self.run_alarm_command(name, &command, msg, now),
            Action::Signal(num) => self.route_signal(num, &format!("alarm {name}")),
            Action::Mule(id) => {
                let target = match id {
                    0 => MuleTarget::Any,
                    n => MuleTarget::Mule(n),
                };
                let sockets = alarms.framework.sockets();
                let sent = match sockets.mule_msg(target, msg) {
                    Err(MuleMsgError::InvalidMule(_)) => sockets.mule_msg(MuleTarget::Any, msg),
                    other => other,
                };
                if let Err(e) = sent {
                    alarms.log(name, &format!("cannot send to mule {id}: {e}"));
                }
            }
            Action::Log(prefix) => {
                let text = message_text(msg);
                let line = if prefix.is_empty() {
                    format!("ALARM: {text}")
                } else {
                    format!("ALARM: {prefix} {text}")
                };
                alarms.log(name, &line);
            }
        }
    }

    /// `cmd:COMMAND`: start `/bin/sh -c COMMAND` with `msg` on its stdin.
    fn run_alarm_command(&mut self, name: &str, command: &str, msg: &[u8], now: Instant) {
        let Some(alarms) = self.alarms.as_mut() else {
            return;
        };
        if alarms.commands.len() >= MAX_COMMANDS {
            alarms.log(
                name,
                &format!("{MAX_COMMANDS} alarm commands still running: this one is dropped"),
            );
            return;
        }
        let spawned = message_stdin(msg).and_then(|stdin| {
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(command)
                .stdin(stdin)
                .spawn()
        });
        match spawned {
            Ok(child) => {
                let pid = Pid::from_raw(child.id() as i32);
                // Reaped by the loop's waitpid sweep, not by `Child`.
                std::mem::forget(child);
                let deadline = now + COMMAND_LIMIT;
                alarms.commands.insert(
                    pid,
                    Command {
                        alarm: name.to_string(),
                        deadline,
                        killed: false,
                    },
                );
                self.arm_alarm_kill();
            }
            Err(e) => alarms.log(name, &format!("cannot run \"{command}\": {e}")),
        }
    }

    /// Arm the next kill deadline of the running alarm commands.
    fn arm_alarm_kill(&mut self) {
        let next = self.alarms.as_ref().and_then(|a| {
            a.commands
                .values()
                .filter(|c| !c.killed)
                .map(|c| c.deadline)
                .min()
        });
        match next {
            Some(t) => self.timers.set(Deadline::AlarmKill, t),
            None => {
                self.timers.cancel(&Deadline::AlarmKill);
            }
        }
    }

    /// Kill the alarm commands past [`COMMAND_LIMIT`].
    pub(crate) fn on_alarm_kill(&mut self, now: Instant) {
        let Some(alarms) = self.alarms.as_mut() else {
            return;
        };
        let mut late = Vec::new();
        for (pid, c) in alarms.commands.iter_mut() {
            if !c.killed && c.deadline <= now {
                c.killed = true;
                late.push((*pid, c.alarm.clone()));
            }
        }
        for (pid, name) in late {
            alarms.log(
                &name,
                &format!(
                    "command (pid {pid}) still running after {} seconds: killed",
                    COMMAND_LIMIT.as_secs()
                ),
            );
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        self.arm_alarm_kill();
    }

    /// A reaped pid that was an alarm command: forget it, and log a failure. False when
    /// it was not one.
    pub(crate) fn reaped_alarm_command(&mut self, pid: Pid, success: bool, how: &str) -> bool {
        let Some(alarms) = self.alarms.as_mut() else {
            return false;
        };
        let Some(c) = alarms.commands.remove(&pid) else {
            return false;
        };
        if !success && !c.killed {
            alarms.log(&c.alarm, &format!("command (pid {pid}) failed: {how}"));
        }
        self.arm_alarm_kill();
        true
    }

    /// `alarm-backlog`: a listen queue is full (`line` says which).
    pub(crate) fn alarm_backlog(&mut self, line: &str) {
        let names = match self.alarms.as_ref() {
            Some(a) if !a.backlog.is_empty() => a.backlog.clone(),
            _ => return,
        };
        for name in names {
            self.raise_alarm(&name, line.as_bytes());
        }
    }

    /// `alarm-segfault`: the child in slot `index` (pid `pid`) died of `SIGSEGV`.
    pub(crate) fn alarm_segfault(&mut self, index: usize, pid: Pid) {
        let names = match self.alarms.as_ref() {
            Some(a) if !a.segfault.is_empty() => a.segfault.clone(),
            _ => return,
        };
        let label = self
            .slots
            .get(index)
            .map_or_else(String::new, |s| s.label());
        let msg = format!("{label} (pid: {pid}) died of a segmentation fault (SIGSEGV)");
        for name in names {
            self.raise_alarm(&name, msg.as_bytes());
        }
    }

    /// Before a re-exec: the log master stops (fd 2 is the real log again).
    pub(crate) fn suspend_log_master(&mut self) {
        if let Some(a) = self.alarms.as_mut() {
            a.stop_log_master();
        }
    }

    /// After a failed re-exec: the log master starts again.
    pub(crate) fn resume_log_master(&mut self) {
        if let Some(a) = self.alarms.as_mut() {
            a.start_log_master();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_drops_the_line_ending() {
        assert_eq!(message_text(b"disk full\r\n"), "disk full");
        assert_eq!(message_text(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn a_command_reads_the_message_from_an_in_memory_file() {
        let stdin = message_stdin(b"line one").unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("cat")
            .stdin(stdin)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "line one\n");
        let big = vec![b'x'; 1 << 20];
        let stdin = message_stdin(&big).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("wc -c")
            .stdin(stdin)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            ((1 << 20) + 1).to_string(),
            "larger than a pipe's buffer"
        );
    }
}
