//! The graceful reload's last step: `execve("/proc/self/exe")` with the same argv.
//!
//! The listening sockets are not close-on-exec and are named in `RUWSGI_LISTEN_FDS`, every
//! other descriptor is marked close-on-exec, `UWSGI_RELOADS` counts reloads (apps see
//! `uwsgi.is_a_reload`), and signals stay blocked across the exec until the new image has
//! installed its handlers. The pid does not change.
//!
//! Design decision: an `execve` that succeeds but whose image cannot start (the dynamic
//! loader or the language runtime unreadable by the user the master dropped to) would
//! leave no master at all. So the re-exec is probed first: the same binary, argv and
//! environment plus [`REEXEC_PROBE_ENV`] run as a child, which the binary answers by
//! starting its language runtime and exiting 0 without binding or loading anything
//! ([`probe_reexec`]). The variable's value lists the shared objects the running master has
//! mapped, and the probe also fails when it mapped one that is not in the list
//! ([`check_probe_libraries`]): a user who cannot read the runtime's directory may get
//! another copy of the runtime from the default library path (a different libpython), which
//! would start but run the apps on a different interpreter. Only when the probe succeeds
//! does the master replace itself; when it fails the reload replaces the workers only.

use std::ffi::{CString, OsString};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use ruwsgi_sys::socket::{encode_listen_fds, LISTEN_FDS_ENV};
use ruwsgi_sys::{log_line, signals};

use crate::master::Master;
use crate::types::MasterPhase;

/// Environment variable counting reloads (uWSGI's name).
pub const RELOADS_ENV: &str = "UWSGI_RELOADS";

/// Set in the environment of a re-exec probe: the binary must then start its language
/// runtime as it would at boot (same settings, same user), bind nothing, load no app, call
/// [`check_probe_libraries`] with the variable's value, and exit 0 on success or non-zero
/// with the reason as the last line on stderr.
pub const REEXEC_PROBE_ENV: &str = "RUWSGI_REEXEC_PROBE";

/// How long a re-exec probe may take before it counts as failed (and is killed).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Run `/proc/self/exe` with `argv` (argv\[0\] kept) and the current environment plus
/// [`REEXEC_PROBE_ENV`] (set to this process's [`mapped_libraries`], one per line), and wait at most `timeout` for it. `Ok` when it exited 0;
/// otherwise the reason: the last line it wrote on stderr, its exit status, or the timeout.
pub fn probe_reexec(argv: &[OsString], timeout: Duration) -> Result<(), String> {
    let mut command = Command::new("/proc/self/exe");
    if let Some((arg0, rest)) = argv.split_first() {
        command.arg0(arg0).args(rest);
    }
    let mut child = command
        .env(REEXEC_PROBE_ENV, mapped_libraries().join("\n"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start /proc/self/exe: {e}"))?;
    let end = Instant::now() + timeout;
    // Keep the tail of stderr: the reason is on its last line.
    let mut tail: Vec<u8> = Vec::new();
    if let Some(mut err) = child.stderr.take() {
        let mut buf = [0u8; 4096];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let ms = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(err.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
            match err.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    let excess = tail.len().saturating_sub(4096);
                    tail.drain(..excess);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let last_line = String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string());
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(match last_line {
            Some(line) => format!("{s}: {line}"),
            None => s.to_string(),
        }),
        None => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}

/// The shared objects (`*.so*` files) mapped into this process, from `/proc/self/maps`,
/// sorted and deduplicated.
pub fn mapped_libraries() -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    libraries_in_maps(&maps)
}

fn libraries_in_maps(maps: &str) -> Vec<String> {
    let mut libs: Vec<String> = maps
        .lines()
        .filter_map(|line| {
            // address perms offset dev inode path (the path may contain spaces)
            let mut fields = line.split_whitespace();
            let path_start = fields.nth(5)?;
            let at = line.find(path_start)?;
            let path = line[at..].trim_end();
            let path = path.strip_suffix(" (deleted)").unwrap_or(path);
            let name = path.rsplit('/').next()?;
            (path.starts_with('/') && name.contains(".so")).then(|| path.to_string())
        })
        .collect();
    libs.sort_unstable();
    libs.dedup();
    libs
}

/// In a re-exec probe, after the runtime started: `Err` naming the shared objects this
/// process mapped that are not in `expected` (the running master's list, one per line).
pub fn check_probe_libraries(expected: &str) -> Result<(), String> {
    let expected: Vec<&str> = expected.lines().collect();
    let extra: Vec<String> = mapped_libraries()
        .into_iter()
        .filter(|lib| !expected.contains(&lib.as_str()))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(format!(
        "this image loads {}, which the running master does not (another copy of the \
         language runtime is picked up)",
        extra.join(", ")
    ))
}

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
        // fd 2 back to the real log: the new image makes its own log pipe.
        self.suspend_log_master();
        let mask = signals::block_all().ok();
        let err = match nix::unistd::execve(c"/proc/self/exe", &argv, &env) {
            Err(errno) => io::Error::from(errno),
            Ok(never) => match never {},
        };
        if let Some(mask) = mask {
            let _ = signals::restore_mask(&mask);
        }
        self.resume_log_master();
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_are_read_from_maps() {
        let maps = "\
7f00-7f01 r-xp 00000000 08:01 123    /usr/lib/x86_64-linux-gnu/libc.so.6
7f01-7f02 r--p 00000000 08:01 124    /opt/py/lib/libpython3.11.so.1.0 (deleted)
7f02-7f03 rw-p 00000000 00:00 0
7f03-7f04 r--p 00000000 08:01 125    /usr/lib/locale/locale-archive
7f04-7f05 r-xp 00000000 08:01 126    /srv/my app/_ext.cpython-311.so
7f05-7f06 r-xp 00000000 08:01 123    /usr/lib/x86_64-linux-gnu/libc.so.6
7f06-7f07 r-xp 00000000 00:00 0      [vdso]
";
        assert_eq!(
            libraries_in_maps(maps),
            [
                "/opt/py/lib/libpython3.11.so.1.0",
                "/srv/my app/_ext.cpython-311.so",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
            ]
        );
    }

    #[test]
    fn a_probe_with_the_same_libraries_passes() {
        let mine = mapped_libraries();
        assert!(mine.iter().any(|l| l.contains("libc")), "{mine:?}");
        assert_eq!(check_probe_libraries(&mine.join("\n")), Ok(()));
        let others: Vec<&str> = mine
            .iter()
            .map(String::as_str)
            .filter(|l| !l.contains("libc"))
            .collect();
        let err = check_probe_libraries(&others.join("\n")).unwrap_err();
        assert!(err.contains("libc"), "{err}");
    }

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
