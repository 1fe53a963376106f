//! Listening sockets: parse an address as uWSGI writes it, bind it, report the real address.
//!
//! Design decision: listening fds are non-blocking and deliberately *not* close-on-exec, so
//! they survive the master's re-exec on reload (queued connections are kept) and are
//! inherited by every forked worker; [`inherit`] carries them across the exec.
//! `:port` binds 127.0.0.1 (ruwsgi's safer default, ARCHITECTURE §6), which
//! [`ParsedAddr::loopback_default`] reports so the caller can warn.

mod accept;
mod connect;
pub mod inherit;
mod queue;

pub use accept::accept_nonblocking;
pub use connect::{connect_stream, connect_target};
pub use queue::listen_queue;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    bind, getsockname, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
    SockType, SockaddrLike, SockaddrStorage, UnixAddr,
};

pub use inherit::{
    decode_listen_fds, encode_listen_fds, InheritedListeners, ListenFdEntry, LISTEN_FDS_ENV,
};

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    /// An IPv4 or IPv6 address and port (port 0 = any free port).
    Tcp(SocketAddr),
    /// A filesystem unix socket.
    Unix(PathBuf),
    /// A Linux abstract unix socket (`@name`), the name without the leading NUL.
    Abstract(Vec<u8>),
}

impl BindAddr {
    /// True for filesystem and abstract unix sockets.
    pub fn is_unix(&self) -> bool {
        !matches!(self, BindAddr::Tcp(_))
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddr::Tcp(sa) => write!(f, "{sa}"),
            BindAddr::Unix(p) => write!(f, "{}", p.display()),
            BindAddr::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

/// A parsed address and how it was derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAddr {
    /// What to bind.
    pub addr: BindAddr,
    /// The address was `:port`, bound to 127.0.0.1 instead of every interface: log a
    /// warning that names `0.0.0.0:port` as the way to listen everywhere.
    pub loopback_default: bool,
}

/// An address that cannot be bound as written.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// Empty string.
    #[error("empty socket address")]
    Empty,
    /// `host` without `:port`.
    #[error("socket address {0:?} has no port")]
    MissingPort(String),
    /// The port is not a number in 0..=65535.
    #[error("invalid port in socket address {0:?}")]
    BadPort(String),
    /// The host did not resolve.
    #[error("cannot resolve {host:?}: {source}")]
    Resolve {
        /// The host part.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// A malformed `RUWSGI_LISTEN_FDS` entry.
    #[error("malformed listen-fd entry {0:?}")]
    BadFdEntry(String),
}

/// Parse `host:port`, `:port` (→ 127.0.0.1), `0.0.0.0:port`, `[::1]:port`, `name:port`
/// (resolved, first result), a path (anything with `/` or ending in `.sock`), or `@name`.
pub fn parse_addr(s: &str) -> Result<ParsedAddr, AddrError> {
    let plain = |addr| {
        Ok(ParsedAddr {
            addr,
            loopback_default: false,
        })
    };
    if s.is_empty() {
        return Err(AddrError::Empty);
    }
    if let Some(name) = s.strip_prefix('@') {
        return plain(BindAddr::Abstract(name.as_bytes().to_vec()));
    }
    if s.contains('/') || s.ends_with(".sock") {
        return plain(BindAddr::Unix(PathBuf::from(s)));
    }
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| AddrError::BadPort(s.to_string()))?;
        return Ok(ParsedAddr {
            addr: BindAddr::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
            loopback_default: true,
        });
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return plain(BindAddr::Tcp(sa));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| AddrError::MissingPort(s.to_string()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| AddrError::BadPort(s.to_string()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let resolved = (host, port)
        .to_socket_addrs()
        .map_err(|source| AddrError::Resolve {
            host: host.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| AddrError::Resolve {
            host: host.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address"),
        })?;
    plain(BindAddr::Tcp(resolved))
}

/// How [`bind_listener`] sets a socket up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// The `listen(2)` backlog, capped at `SOMAXCONN`.
    pub backlog: u32,
    /// Mode of a filesystem unix socket, applied after bind.
    pub unix_mode: u32,
    /// `TCP_DEFER_ACCEPT` seconds for TCP sockets (0 = off): the kernel hands a
    /// connection to `accept` only once its first data has arrived, so a worker wakes once
    /// per new connection (with the request already readable) instead of twice.
    pub defer_accept_secs: u32,
}

impl ListenOptions {
    /// The defaults: a backlog of 100, mode 0660, deferred accept for 4 seconds.
    pub const DEFAULT: ListenOptions = ListenOptions {
        backlog: 100,
        unix_mode: 0o660,
        defer_accept_secs: 4,
    };
}

/// Bind and listen on `addr`: `SO_REUSEADDR` for TCP, `IPV6_V6ONLY` for IPv6,
/// `TCP_DEFER_ACCEPT` when asked; for a unix path, a stale socket file is removed first
/// (only if it is a socket nobody accepts on), and the file is chmod-ed after bind. The fd
/// is non-blocking and not close-on-exec.
pub fn bind_listener(addr: &BindAddr, opts: ListenOptions) -> io::Result<OwnedFd> {
    let ListenOptions {
        backlog,
        unix_mode,
        defer_accept_secs,
    } = opts;
    let fd = match addr {
        BindAddr::Tcp(sa) => {
            let family = if sa.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let fd = socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK, None)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            if sa.is_ipv6() {
                setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            }
            if defer_accept_secs > 0 {
                set_defer_accept(fd.as_raw_fd(), defer_accept_secs)?;
            }
            bind(fd.as_raw_fd(), &SockaddrStorage::from(*sa))?;
            fd
        }
        BindAddr::Unix(path) => {
            remove_stale_socket(path)?;
            let fd = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK,
                None,
            )?;
            bind(fd.as_raw_fd(), &UnixAddr::new(path.as_path())?)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(unix_mode))?;
            fd
        }
        BindAddr::Abstract(name) => {
            let fd = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK,
                None,
            )?;
            bind(fd.as_raw_fd(), &UnixAddr::new_abstract(name)?)?;
            fd
        }
    };
    let backlog = i32::try_from(backlog)
        .unwrap_or(i32::MAX)
        .min(libc::SOMAXCONN);
    listen(&fd, Backlog::new(backlog)?)?;
    Ok(fd)
}

/// `TCP_DEFER_ACCEPT` (not wrapped by nix for Linux).
fn set_defer_accept(fd: std::os::fd::RawFd, secs: u32) -> io::Result<()> {
    let v = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is an open socket owned by the caller; `v` lives across the call and
    // its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::addr_of!(v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Remove `path` if it is a socket file left behind by a dead instance. A live one (a
/// connect succeeds) is `AddrInUse`; a non-socket file is left alone (bind then fails).
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running process", path.display()),
                ));
            }
            std::fs::remove_file(path)
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The address `fd` is bound to, structured (the real port after binding port 0).
pub fn bound_addr(fd: BorrowedFd<'_>) -> io::Result<BindAddr> {
    let ss: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    if let Some(v4) = ss.as_sockaddr_in() {
        return Ok(BindAddr::Tcp(SocketAddr::V4((*v4).into())));
    }
    if let Some(v6) = ss.as_sockaddr_in6() {
        return Ok(BindAddr::Tcp(SocketAddr::V6((*v6).into())));
    }
    if let Some(un) = ss.as_unix_addr() {
        if let Some(p) = un.path() {
            return Ok(BindAddr::Unix(p.to_path_buf()));
        }
        if let Some(name) = un.as_abstract() {
            return Ok(BindAddr::Abstract(name.to_vec()));
        }
        return Ok(BindAddr::Unix(PathBuf::new()));
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("address family {:?}", ss.family()),
    ))
}

/// The address `fd` is bound to, as logs show it (`127.0.0.1:41234`, `[::1]:80`,
/// `/run/app.sock`, `@name`).
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<String> {
    bound_addr(fd).map(|a| a.to_string())
}

/// True when `actual` (from [`bound_addr`]) satisfies the configured `wanted` address
/// (a configured port 0 matches any port).
pub fn addr_matches(wanted: &BindAddr, actual: &BindAddr) -> bool {
    match (wanted, actual) {
        (BindAddr::Tcp(w), BindAddr::Tcp(a)) => {
            w.ip() == a.ip() && (w.port() == 0 || w.port() == a.port())
        }
        (BindAddr::Unix(w), BindAddr::Unix(a)) => {
            w.as_os_str().as_bytes() == a.as_os_str().as_bytes()
        }
        (BindAddr::Abstract(w), BindAddr::Abstract(a)) => w == a,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
