//! Listening sockets and client streams, TCP or unix, behind one enum each.
//!
//! The listening sockets are inherited from the master and shared by every core of every
//! worker (the kernel wakes one waiter per connection through `EPOLLEXCLUSIVE`). Streams are
//! non-blocking; the loop waits for them through epoll, and a request in flight waits with
//! `poll` bounded by `socket-timeout`.

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ruwsgi_config::Protocol;

/// One listening socket as a worker sees it.
#[derive(Debug)]
pub struct ListenSocket {
    /// The socket itself.
    pub kind: ListenKind,
    /// The protocol clients speak on it.
    pub protocol: Protocol,
    /// The real bound address, for logs.
    pub name: String,
    /// Local host and port used for `SERVER_NAME`/`SERVER_PORT` when the request has no Host.
    pub server_name: String,
    /// See `server_name`.
    pub server_port: String,
}

/// A TCP or unix listener.
#[derive(Debug)]
pub enum ListenKind {
    /// TCP, IPv4 or IPv6.
    Tcp(TcpListener),
    /// A unix stream socket.
    Unix(UnixListener),
}

impl ListenSocket {
    /// Wrap an inherited listening fd.
    pub fn new(fd: OwnedFd, is_unix: bool, protocol: Protocol, name: String) -> ListenSocket {
        let kind = if is_unix {
            ListenKind::Unix(UnixListener::from(fd))
        } else {
            ListenKind::Tcp(TcpListener::from(fd))
        };
        let (server_name, server_port) = match &kind {
            ListenKind::Tcp(l) => match l.local_addr() {
                Ok(a) => (a.ip().to_string(), a.port().to_string()),
                Err(_) => (String::from("localhost"), String::from("0")),
            },
            ListenKind::Unix(_) => (name.clone(), String::new()),
        };
        ListenSocket {
            kind,
            protocol,
            name,
            server_name,
            server_port,
        }
    }

    /// Accept one pending connection, non-blocking.
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        let (fd, addr) = ruwsgi_sys::socket::accept_nonblocking(self.as_fd())?;
        match (&self.kind, addr) {
            (ListenKind::Tcp(_), Some(addr)) => {
                let s = TcpStream::from(fd);
                if self.protocol == Protocol::Http {
                    // Small responses go out in one write; never let Nagle hold a tail back.
                    // (uwsgi peers get one write per response and then a close.)
                    let _ = s.set_nodelay(true);
                }
                Ok((Stream::Tcp(s), Peer::Tcp(addr)))
            }
            _ => Ok((Stream::Unix(UnixStream::from(fd)), Peer::Unix)),
        }
    }
}

impl AsFd for ListenSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            ListenKind::Tcp(l) => l.as_fd(),
            ListenKind::Unix(l) => l.as_fd(),
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A unix-socket client (trusted: only local processes with file access reach it).
    Unix,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => a.fmt(f),
            Peer::Unix => f.write_str("unix socket peer"),
        }
    }
}

impl Peer {
    /// True for unix peers and loopback addresses.
    pub fn is_local(&self) -> bool {
        match self {
            Peer::Unix => true,
            Peer::Tcp(a) => match a.ip() {
                IpAddr::V4(ip) => ip.is_loopback(),
                IpAddr::V6(ip) => {
                    ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
            },
        }
    }

    /// `REMOTE_ADDR` and `REMOTE_PORT` as text, formatted once per connection.
    pub fn text(&self) -> PeerText {
        PeerText {
            addr: self.ip_string(),
            port: self.port_string(),
        }
    }

    /// The address as text (`REMOTE_ADDR`); empty for unix peers.
    pub fn ip_string(&self) -> String {
        match self {
            Peer::Tcp(a) => match a.ip() {
                IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                    Some(v4) => v4.to_string(),
                    None => ip.to_string(),
                },
                ip => ip.to_string(),
            },
            Peer::Unix => String::new(),
        }
    }

    /// The port as text (`REMOTE_PORT`); empty for unix peers.
    pub fn port_string(&self) -> String {
        match self {
            Peer::Tcp(a) => a.port().to_string(),
            Peer::Unix => String::new(),
        }
    }
}

/// A peer's address and port as the CGI variables carry them.
#[derive(Debug, Clone, Default)]
pub struct PeerText {
    /// `REMOTE_ADDR` (empty for unix peers).
    pub addr: String,
    /// `REMOTE_PORT` (empty for unix peers).
    pub port: String,
}

/// A connected client.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix.
    Unix(UnixStream),
}

impl Stream {
    /// Shut both directions down (the fd stays open until drop).
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a request waits for its socket: readable (`false`) or writable (`true`) within the
/// timeout; `Ok(false)` on timeout. Sync cores block in [`wait_fd`]; async cores park.
pub type WaitFn = fn(BorrowedFd<'_>, bool, Duration) -> io::Result<bool>;

/// Wait until `fd` is readable (or writable) for at most `timeout`. Returns false on timeout.
pub fn wait_fd(fd: BorrowedFd<'_>, writable: bool, timeout: Duration) -> io::Result<bool> {
    let flags = if writable {
        PollFlags::POLLOUT
    } else {
        PollFlags::POLLIN
    };
    let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    loop {
        let mut fds = [PollFd::new(fd, flags)];
        match poll(&mut fds, ms) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Write all of `bufs` to a non-blocking stream, waiting up to `timeout` each time the
/// socket is full. Returns the bytes written.
pub fn write_all_vectored(
    stream: &mut Stream,
    bufs: &mut [IoSlice<'_>],
    timeout: Duration,
) -> io::Result<u64> {
    write_all_vectored_with(stream, bufs, timeout, wait_fd)
}

/// [`write_all_vectored`], waiting for a full socket with `wait`.
pub fn write_all_vectored_with(
    stream: &mut Stream,
    mut bufs: &mut [IoSlice<'_>],
    timeout: Duration,
    wait: WaitFn,
) -> io::Result<u64> {
    let mut total = 0u64;
    while !bufs.is_empty() {
        match stream.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                total += n as u64;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait(stream.as_fd(), true, timeout)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}
