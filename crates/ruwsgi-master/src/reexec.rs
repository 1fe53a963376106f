//! The graceful reload's last step: `execve("/proc/self/exe")` with the same argv.
//!
//! The listening sockets are not close-on-exec and are named in `RUWSGI_LISTEN_FDS`, every
//! other descriptor is marked close-on-exec, `UWSGI_RELOADS` counts reloads (apps see
//! `uwsgi.is_a_reload`), and signals stay blocked across the exec until the new image has
//! installed its handlers. The pid does not change.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use ruwsgi_sys::socket::{encode_listen_fds, LISTEN_FDS_ENV};
use ruwsgi_sys::{log_line, signals};

use crate::master::Master;
use crate::types::MasterPhase;

/// Environment variable counting reloads (uWSGI's name).
pub const RELOADS_ENV: &str = "UWSGI_RELOADS";

/// The reload count of this image (`UWSGI_RELOADS`, 0 when absent).
pub fn reloads_from_env() -> u64 {
    std::env::var(RELOADS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The environment of the re-exec'd master: `current` minus any previous hand-over
/// variables, plus `RUWSGI_LISTEN_FDS=listen_fds` and `UWSGI_RELOADS=reloads`. Entries that
/// cannot be C strings are dropped.
pub fn reexec_env(
    current: impl IntoIterator<Item = (OsString, OsString)>,
    listen_fds: &str,
    reloads: u64,
) -> Vec<CString> {
    let mut env: Vec<CString> = current
        .into_iter()
        .filter(|(k, _)| k != LISTEN_FDS_ENV && k != RELOADS_ENV)
        .filter_map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            CString::new(entry).ok()
        })
        .collect();
    env.extend(CString::new(format!("{LISTEN_FDS_ENV}={listen_fds}")));
    env.extend(CString::new(format!("{RELOADS_ENV}={reloads}")));
    env
}

impl Master {
    /// Replace this process with a fresh image of itself. Returns only on failure.
    pub(crate) fn reexec(&mut self) -> io::Error {
        self.phase(MasterPhase::Reexec);
        let reloads = self.reloads + 1;
        let pairs: Vec<(std::os::fd::BorrowedFd<'_>, &str)> = self
            .sockets
            .iter()
            .map(|b| (b.fd.as_fd(), b.spec.address.as_str()))
            .collect();
        let listen_fds = encode_listen_fds(&pairs);
        let keep: Vec<_> = self.sockets.iter().map(|b| b.fd.as_fd()).collect();
        if let Err(e) = ruwsgi_sys::process::mark_cloexec_except(&keep) {
            return e;
        }
        let env = reexec_env(std::env::vars_os(), &listen_fds, reloads);
        let argv: Vec<CString> = self
            .argv
            .iter()
            .filter_map(|a| CString::new(a.as_bytes().to_vec()).ok())
            .collect();
        log_line(&format!(
            "ruwsgi: all workers gone, re-executing the master (reload {reloads})"
        ));
        let mask = signals::block_all().ok();
        let err = match nix::unistd::execve(c"/proc/self/exe", &argv, &env) {
            Err(errno) => io::Error::from(errno),
            Ok(never) => match never {},
        };
        if let Some(mask) = mask {
            let _ = signals::restore_mask(&mask);
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_replaces_previous_hand_over_variables() {
        let current = vec![
            (OsString::from("PATH"), OsString::from("/bin")),
            (OsString::from(LISTEN_FDS_ENV), OsString::from("3:old")),
            (OsString::from(RELOADS_ENV), OsString::from("4")),
        ];
        let env = reexec_env(current, "5:127.0.0.1:0", 5);
        let env: Vec<&str> = env.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(
            env,
            [
                "PATH=/bin",
                "RUWSGI_LISTEN_FDS=5:127.0.0.1:0",
                "UWSGI_RELOADS=5"
            ]
        );
    }
}
