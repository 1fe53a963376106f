//! Outgoing stream connections for the async API (`uwsgi.async_connect`, `uwsgi.connect`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, UnixAddr,
};

use super::{parse_addr, BindAddr};

/// Where `uwsgi.connect` goes: `host:port` (TCP, `:port` being 127.0.0.1), `@name`
/// (abstract unix socket) or, with no `:`, a unix socket path.
pub fn connect_target(s: &str) -> io::Result<BindAddr> {
    if s.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty address"));
    }
    if !s.contains(':') && !s.starts_with('@') {
        return Ok(BindAddr::Unix(s.into()));
    }
    parse_addr(s)
        .map(|p| p.addr)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// Connect a new close-on-exec stream socket to `addr`. With `nonblocking`, the socket
/// stays non-blocking and the connection may still be in progress (wait for writability,
/// then check [`crate::rawfd::socket_error`]). Otherwise the call waits until the
/// connection is made, at most `timeout` (`None`: as long as the kernel does), and returns
/// a blocking socket.
pub fn connect_stream(
    addr: &BindAddr,
    nonblocking: bool,
    timeout: Option<Duration>,
) -> io::Result<OwnedFd> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = match addr {
        BindAddr::Tcp(sa) => {
            let family = if sa.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let fd = socket(family, SockType::Stream, flags, None)?;
            let r = match sa {
                std::net::SocketAddr::V4(v4) => connect(fd.as_raw_fd(), &SockaddrIn::from(*v4)),
                std::net::SocketAddr::V6(v6) => connect(fd.as_raw_fd(), &SockaddrIn6::from(*v6)),
            };
            started(r)?;
            fd
        }
        BindAddr::Unix(path) => {
            let fd = socket(AddressFamily::Unix, SockType::Stream, flags, None)?;
            started(connect(fd.as_raw_fd(), &UnixAddr::new(path.as_path())?))?;
            fd
        }
        BindAddr::Abstract(name) => {
            let fd = socket(AddressFamily::Unix, SockType::Stream, flags, None)?;
            started(connect(fd.as_raw_fd(), &UnixAddr::new_abstract(name)?))?;
            fd
        }
    };
    if nonblocking {
        return Ok(fd);
    }
    let ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
    if !crate::rawfd::poll_one(fd.as_raw_fd(), true, ms)? {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
    }
    match crate::rawfd::socket_error(fd.as_raw_fd())? {
        0 => {}
        e => return Err(io::Error::from_raw_os_error(e)),
    }
    let fl = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(fl & !OFlag::O_NONBLOCK))?;
    Ok(fd)
}

/// A non-blocking connect that began (or finished at once) is fine.
fn started(r: nix::Result<()>) -> io::Result<()> {
    match r {
        Ok(()) | Err(Errno::EINPROGRESS) | Err(Errno::EAGAIN) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn targets() {
        assert!(matches!(
            connect_target("/tmp/x").unwrap(),
            BindAddr::Unix(_)
        ));
        assert!(matches!(
            connect_target("x.sock").unwrap(),
            BindAddr::Unix(_)
        ));
        assert!(matches!(
            connect_target("@abc").unwrap(),
            BindAddr::Abstract(_)
        ));
        assert!(matches!(
            connect_target("127.0.0.1:80").unwrap(),
            BindAddr::Tcp(_)
        ));
        assert!(connect_target("").is_err());
        assert!(connect_target("host:notaport").is_err());
    }

    #[test]
    fn blocking_and_nonblocking_connects() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = BindAddr::Tcp(l.local_addr().unwrap());
        let fd = connect_stream(&addr, false, Some(Duration::from_secs(5))).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        let mut s = std::net::TcpStream::from(fd);
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        let fd = connect_stream(&addr, true, None).unwrap();
        assert!(crate::rawfd::poll_one(fd.as_raw_fd(), true, 5000).unwrap());
        assert_eq!(crate::rawfd::socket_error(fd.as_raw_fd()).unwrap(), 0);
        drop(l);
        // Nobody listens there any more.
        let refused = connect_stream(&addr, false, Some(Duration::from_secs(5)));
        assert!(refused.is_err());
    }
}
