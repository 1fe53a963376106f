//! Mules: what a mule child starts with ([`MuleStart`]) and the default main
//! ([`default_mule_main`]) the master runs in it unless [`crate::MasterConfig::mule_main`]
//! says otherwise.
//!
//! A plain mule waits for uWSGI signals and mule messages and runs their handlers and hooks;
//! it exits when the master is gone. A script mule runs its file through the language
//! plugin ([`ruwsgi_plugin::LanguagePlugin::run_mule`]), a callable mule its callable
//! ([`ruwsgi_plugin::LanguagePlugin::run_mule_callable`]); when either returns the mule
//! exits and the master respawns it. Stop signals end a plain mule cleanly between two
//! handlers, and keep their default action in script and callable mules, so a reload or a
//! stop ends those at once, as uWSGI does.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};
use ruwsgi_config::MuleSpec;
use ruwsgi_signal::mules::Received;
use ruwsgi_sys::{log_line, Signal, SignalPipe};
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::types::ChildStart;

/// Everything a mule process starts with: what every child gets (its scoreboard is the
/// mules' one), plus what it runs.
pub struct MuleStart {
    /// Identity, scoreboard, settings, plugin and channel.
    pub child: ChildStart,
    /// What it runs.
    pub spec: MuleSpec,
}

/// How a mule process runs; its return value is the child's exit code.
pub type MuleMain = Box<dyn Fn(MuleStart) -> i32>;

/// The master's mule main: a plain mule's loop, or the script or callable through the
/// plugin.
pub fn default_mule_main(start: MuleStart) -> i32 {
    let id = start.child.id;
    let result = match &start.spec {
        MuleSpec::Plain => return plain_mule(&start),
        MuleSpec::Script(script) => start.child.plugin.run_mule(script),
        MuleSpec::Callable(spec) => start.child.plugin.run_mule_callable(spec),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            log_line(&format!("mule {id}: {e}"));
            1
        }
    }
}

/// A plain mule: wait for signals (its channel, the shared mule socket, its farms') and
/// messages (its queue, the shared one, its farms'); run the handler of each signal (under
/// `mule-harakiri`) and hand each message to the plugin's hooks. A stop signal ends it
/// (exit 0) once the handler in progress returns; so does the master's end-of-file.
fn plain_mule(start: &MuleStart) -> i32 {
    let id = start.child.id;
    // Stop signals end a waiting mule cleanly (exit 0); while a handler or a hook runs
    // they are taken once it returns.
    let stops = match SignalPipe::install(&[
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
    ]) {
        Ok(p) => p,
        Err(e) => {
            log_line(&format!("mule {id}: cannot install signal handlers: {e}"));
            return 1;
        }
    };
    let Some(signals) = start.child.signals.as_ref() else {
        return wait_for_master(id, start.child.channel, &stops);
    };
    let max = signals.mule_msg_recv_size();
    let limit = start.child.settings.signals.mule_harakiri;
    let row = start.child.scoreboard.core(id, 0);
    let who = format!("mule {id}");
    loop {
        match signals
            .inbox(id)
            .stop_on(stops.fd())
            .wait(true, true, None, max)
        {
            Ok(Received::Stop) => {
                if !stops.drain().is_empty() {
                    return 0;
                }
            }
            Ok(Received::Signal(n)) => {
                signals.dispatch_guarded(n, &who, start.child.scoreboard.get(id), row, limit);
            }
            Ok(Received::Message(msg)) => {
                if let Some(row) = row.filter(|_| !limit.is_zero()) {
                    let now_ms = unix_ms();
                    row.request_began(
                        now_ms,
                        now_ms.saturating_add(limit.as_millis() as u64),
                        &[b"mule message"],
                    );
                }
                if !start.child.plugin.mule_message(&msg) {
                    log_line(&format!(
                        "*** mule {id} received a {} bytes message ***",
                        msg.len()
                    ));
                }
                if let Some(row) = row {
                    row.request_ended();
                }
            }
            Ok(Received::Timeout) => {}
            Ok(Received::MasterGone) => {
                log_line(&format!("mule {id}: the master is gone, exiting"));
                return 0;
            }
            Err(e) => {
                log_line(&format!("mule {id}: cannot wait for messages: {e}"));
                return 1;
            }
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Without the signal framework: wait for a stop signal (exit 0) or the master's
/// end-of-file.
fn wait_for_master(id: u32, channel: Option<BorrowedFd<'static>>, stops: &SignalPipe) -> i32 {
    let mut buf = [0u8; ruwsgi_proto::channel::MAX_MESSAGE + 1];
    loop {
        let mut fds = vec![PollFd::new(stops.fd(), PollFlags::POLLIN)];
        fds.extend(channel.map(|c| PollFd::new(c, PollFlags::POLLIN)));
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                log_line(&format!("mule {id}: poll failed: {e}"));
                return 1;
            }
        }
        if !stops.drain().is_empty() {
            return 0;
        }
        let Some(fd) = channel else { continue };
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) | Err(Errno::ECONNRESET) => {
                log_line(&format!("mule {id}: the master is gone, exiting"));
                return 0;
            }
            Ok(_) | Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                log_line(&format!("mule {id}: channel error: {e}"));
                return 1;
            }
        }
    }
}
