//! Sockets and pidfiles: bind (or adopt after a re-exec), write pidfiles, vacuum at exit.
//!
//! After a re-exec the master finds its old listening sockets in `RUWSGI_LISTEN_FDS` and
//! adopts each one whose configured address and bound address match, so connections queued
//! during the reload are served by the new generation instead of being refused.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use ruwsgi_config::{Settings, SocketSpec};
use ruwsgi_sys::socket::InheritedListeners;
use ruwsgi_sys::{log_line, BindAddr};

use crate::error::MasterError;

/// One listening socket owned by the master.
#[derive(Debug)]
pub(crate) struct Bound {
    /// Not close-on-exec: inherited by workers and kept across the re-exec.
    pub fd: OwnedFd,
    /// As configured.
    pub spec: SocketSpec,
    /// The real bound address.
    pub name: String,
    /// Path to remove on vacuum (filesystem unix sockets only).
    pub unix_path: Option<PathBuf>,
    /// Unix (path or abstract).
    pub is_unix: bool,
}

/// Bind every configured socket (adopting inherited ones), logging each.
pub(crate) fn bind_all(
    settings: &Settings,
    inherited: &mut InheritedListeners,
) -> Result<Vec<Bound>, MasterError> {
    let default = ruwsgi_sys::ListenOptions::DEFAULT;
    let opts = ruwsgi_sys::ListenOptions {
        backlog: settings.sockets.listen,
        unix_mode: settings.sockets.chmod_socket.unwrap_or(default.unix_mode),
        defer_accept_secs: if settings.sockets.defer_accept {
            default.defer_accept_secs
        } else {
            0
        },
    };
    let mut out = Vec::with_capacity(settings.sockets.bind.len());
    for spec in &settings.sockets.bind {
        let parsed =
            ruwsgi_sys::parse_addr(&spec.address).map_err(|source| MasterError::Address {
                address: spec.address.clone(),
                option: spec.option,
                source,
            })?;
        let fd = match inherited.take(&spec.address, &parsed.addr) {
            Some(fd) => fd,
            None => ruwsgi_sys::bind_listener(&parsed.addr, opts).map_err(|source| {
                MasterError::Bind {
                    address: spec.address.clone(),
                    option: spec.option,
                    source,
                }
            })?,
        };
        let name = ruwsgi_sys::local_addr(fd.as_fd()).unwrap_or_else(|_| parsed.addr.to_string());
        log_line(&format!(
            "ruwsgi: listening on {name} ({}, fd {})",
            spec.option,
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ));
        if parsed.loopback_default {
            log_line(&format!(
                "*** WARNING: {} {:?} has no host: bound to 127.0.0.1 only; write 0.0.0.0{} to listen on every interface ***",
                spec.option, spec.address, spec.address
            ));
        }
        let unix_path = match &parsed.addr {
            BindAddr::Unix(p) => Some(p.clone()),
            _ => None,
        };
        out.push(Bound {
            fd,
            spec: spec.clone(),
            name,
            is_unix: parsed.addr.is_unix(),
            unix_path,
        });
    }
    Ok(out)
}

/// Write `pidfile` (plain) and `safe-pidfile` (temporary file + rename).
pub(crate) fn write_pidfiles(settings: &Settings, pid: i32) -> Result<(), MasterError> {
    let content = format!("{pid}\n");
    if let Some(path) = &settings.processes.pidfile {
        std::fs::write(path, &content).map_err(|source| MasterError::Pidfile {
            path: path.clone(),
            source,
        })?;
    }
    if let Some(path) = &settings.processes.safe_pidfile {
        write_atomically(path, &content).map_err(|source| MasterError::Pidfile {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

fn write_atomically(path: &Path, content: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

/// `vacuum`: remove unix socket files and pidfiles (at a stop, never at a re-exec).
pub(crate) fn vacuum(settings: &Settings, sockets: &[Bound]) {
    let paths = sockets
        .iter()
        .filter_map(|b| b.unix_path.as_deref())
        .chain(settings.processes.pidfile.as_deref())
        .chain(settings.processes.safe_pidfile.as_deref())
        .chain(settings.processes.pidfile2.as_deref());
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => log_line(&format!("ruwsgi: vacuum: removed {}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log_line(&format!(
                "ruwsgi: vacuum: cannot remove {}: {e}",
                path.display()
            )),
        }
    }
}
