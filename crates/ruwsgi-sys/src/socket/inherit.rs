//! Carrying listening sockets across the master's re-exec.
//!
//! Before `execve`, the master puts `RUWSGI_LISTEN_FDS=fd:address,fd:address` in the new
//! image's environment, where `address` is the socket's configured address (`%`, `,`
//! percent-escaped). After exec, the new master claims those fds once
//! ([`InheritedListeners::from_env`], an `unsafe` constructor because it takes ownership of
//! descriptor numbers read from text), then, for each configured socket, adopts the one whose
//! configured address matches and which really is a listening socket bound there, instead
//! of binding again. Fds nobody adopts are closed when the set is dropped.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::sys::socket::{getsockopt, sockopt};

use super::{addr_matches, bound_addr, AddrError, BindAddr};

/// Name of the environment variable holding the inherited listeners.
pub const LISTEN_FDS_ENV: &str = "RUWSGI_LISTEN_FDS";

/// One decoded entry: a descriptor number and the configured address it was bound for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenFdEntry {
    /// The descriptor number in the new image (a number from text, not yet an owned fd).
    pub fd_number: i32,
    /// The configured address (as written in the options).
    pub address: String,
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace(',', "%2C")
}

fn unescape(s: &str) -> String {
    s.replace("%2C", ",").replace("%25", "%")
}

/// Encode `(fd, configured address)` pairs as the value of [`LISTEN_FDS_ENV`].
pub fn encode_listen_fds(entries: &[(BorrowedFd<'_>, &str)]) -> String {
    entries
        .iter()
        .map(|(fd, addr)| format!("{}:{}", fd.as_raw_fd(), escape(addr)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Decode a [`LISTEN_FDS_ENV`] value (pure; no descriptor is touched).
pub fn decode_listen_fds(value: &str) -> Result<Vec<ListenFdEntry>, AddrError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|item| {
            let bad = || AddrError::BadFdEntry(item.to_string());
            let (fd, addr) = item.split_once(':').ok_or_else(bad)?;
            let fd_number: i32 = fd.parse().map_err(|_| bad())?;
            if fd_number < 0 {
                return Err(bad());
            }
            Ok(ListenFdEntry {
                fd_number,
                address: unescape(addr),
            })
        })
        .collect()
}

/// Listening sockets inherited across exec, waiting to be adopted.
#[derive(Debug, Default)]
pub struct InheritedListeners {
    /// Owned since `from_value`; each is a listening socket. Dropping the set closes the
    /// ones nobody adopted.
    fds: Vec<(OwnedFd, String)>,
}

impl InheritedListeners {
    /// Claim the fds listed in `$RUWSGI_LISTEN_FDS` and remove the variable (so children do
    /// not see it). Missing or malformed variable → an empty set.
    ///
    /// # Safety
    ///
    /// As [`InheritedListeners::from_value`]; call it once per process, at startup.
    pub unsafe fn from_env() -> InheritedListeners {
        let Some(value) = std::env::var_os(LISTEN_FDS_ENV) else {
            return InheritedListeners::default();
        };
        std::env::remove_var(LISTEN_FDS_ENV);
        // SAFETY: forwarded to the caller's contract.
        unsafe { InheritedListeners::from_value(&value.to_string_lossy()) }
    }

    /// Claim ownership of the fds listed in `value` that are open listening sockets
    /// (`SO_ACCEPTCONN`); others (and duplicates, and 0..=2) are ignored.
    ///
    /// # Safety
    ///
    /// No other object in this process may own (or later claim) the listed descriptor
    /// numbers: they must be fds the previous image left open for this purpose and that
    /// nothing else in this process has wrapped in an owner. Otherwise they would be closed
    /// twice.
    pub unsafe fn from_value(value: &str) -> InheritedListeners {
        let mut fds: Vec<(OwnedFd, String)> = Vec::new();
        for entry in decode_listen_fds(value).unwrap_or_default() {
            let n = entry.fd_number;
            if n <= 2 || fds.iter().any(|(fd, _)| fd.as_raw_fd() == n) {
                continue;
            }
            // SAFETY: F_GETFD only queries the flags of descriptor `n` (EBADF if closed).
            if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
                continue;
            }
            // SAFETY: `n` is open (checked above) and, by the caller's contract, unowned by
            // anything else in this process; it was deduplicated, so it is owned once.
            let fd = unsafe { OwnedFd::from_raw_fd(n) };
            if getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false) {
                fds.push((fd, entry.address));
            } else {
                // Not ours to keep: release without closing (it may be something else).
                let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
            }
        }
        InheritedListeners { fds }
    }

    /// Take the inherited fd configured as `configured` whose bound address matches `addr`.
    pub fn take(&mut self, configured: &str, addr: &BindAddr) -> Option<OwnedFd> {
        let pos = self.fds.iter().position(|(fd, conf)| {
            conf == configured
                && bound_addr(fd.as_fd())
                    .map(|actual| addr_matches(addr, &actual))
                    .unwrap_or(false)
        })?;
        Some(self.fds.swap_remove(pos).0)
    }

    /// Number of fds not yet adopted.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// True when every fd was adopted (or none was inherited).
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}
