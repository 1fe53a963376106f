//! Mules: what a mule child starts with ([`MuleStart`]) and the default main
//! ([`default_mule_main`]) the master runs in it unless [`crate::MasterConfig::mule_main`]
//! says otherwise.
//!
//! A plain mule waits on its signals and its channel to the master and exits cleanly on
//! any stop signal or when the master is gone; the signal framework will give it work. A
//! script mule runs its file through the language plugin ([`ruwsgi_plugin::LanguagePlugin::run_mule`]);
//! when the script returns the mule exits and the master respawns it. Stop signals keep
//! their default action while a script runs, so a reload or a stop ends a script mule at
//! once, as uWSGI does.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};
use ruwsgi_config::MuleSpec;
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

/// The master's mule main: a plain mule's wait loop, or the script through the plugin.
pub fn default_mule_main(start: MuleStart) -> i32 {
    match &start.spec {
        MuleSpec::Plain => plain_mule(start.child.id, start.child.channel),
        MuleSpec::Script(script) => match start.child.plugin.run_mule(script) {
            Ok(code) => code,
            Err(e) => {
                log_line(&format!("mule {}: {e}", start.child.id));
                1
            }
        },
    }
}

/// Wait for a stop signal (`SIGHUP`, `SIGTERM`, `SIGINT`, `SIGQUIT`: exit 0) or the
/// master's end-of-file on the channel (exit 0). Packets from the master are not defined
/// yet: they are logged and dropped.
fn plain_mule(id: u32, channel: Option<BorrowedFd<'static>>) -> i32 {
    let signals = match SignalPipe::install(&[
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
    let mut channel = channel;
    let mut buf = [0u8; ruwsgi_proto::channel::MAX_MESSAGE + 1];
    loop {
        let mut fds = vec![PollFd::new(signals.fd(), PollFlags::POLLIN)];
        fds.extend(channel.map(|c| PollFd::new(c, PollFlags::POLLIN)));
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                log_line(&format!("mule {id}: poll failed: {e}"));
                return 1;
            }
        }
        if !signals.drain().is_empty() {
            return 0;
        }
        let Some(fd) = channel else { continue };
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) | Err(Errno::ECONNRESET) => {
                log_line(&format!("mule {id}: the master is gone, exiting"));
                return 0;
            }
            Ok(n) => log_line(&format!(
                "mule {id}: dropped an unexpected {n}-byte message from the master"
            )),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                log_line(&format!(
                    "mule {id}: channel error ({e}): no longer watched"
                ));
                channel = None;
            }
        }
    }
}
