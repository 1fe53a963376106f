//! Calls on file descriptors known only by number: the ones an app hands to the async API
//! (`uwsgi.wait_fd_read(fd)`), which no Rust owner holds.
//!
//! Each call is memory-safe whatever the number: the kernel checks it (`EBADF` for a
//! closed one), and nothing here takes ownership or closes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// An `epoll_ctl` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpollOp {
    /// `EPOLL_CTL_ADD`.
    Add,
    /// `EPOLL_CTL_MOD`.
    Modify,
    /// `EPOLL_CTL_DEL`.
    Delete,
}

/// `epoll_ctl(epoll, op, fd, {events, data})` for a descriptor known by number.
pub fn epoll_ctl(
    epoll: BorrowedFd<'_>,
    op: EpollOp,
    fd: RawFd,
    events: u32,
    data: u64,
) -> io::Result<()> {
    let op = match op {
        EpollOp::Add => libc::EPOLL_CTL_ADD,
        EpollOp::Modify => libc::EPOLL_CTL_MOD,
        EpollOp::Delete => libc::EPOLL_CTL_DEL,
    };
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call; the kernel validates
    // both descriptors and keeps no pointer to `ev`.
    let r = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut ev) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait up to `timeout_ms` (negative: forever) for `fd` to be readable (`false`) or
/// writable (`true`); false on timeout. Error and hang-up count as ready (the next
/// operation on the descriptor reports them).
pub fn poll_one(fd: RawFd, writable: bool, timeout_ms: i32) -> io::Result<bool> {
    let events = if writable {
        libc::POLLOUT
    } else {
        libc::POLLIN
    };
    loop {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, its count is 1; the kernel validates the descriptor.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r > 0 && p.revents & libc::POLLNVAL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        return Ok(r > 0);
    }
}

/// `SO_ERROR` of a socket: 0 when its (non-blocking) connect succeeded or is still going
/// on, else the errno of the failure.
pub fn socket_error(fd: RawFd) -> io::Result<i32> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes of the sizes given; the kernel validates
    // the descriptor.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(err)
}

/// True when the socket has a connected peer (`getpeername` succeeds).
pub fn has_peer(fd: RawFd) -> bool {
    let mut addr: libc::sockaddr_storage =
        // SAFETY: an all-zero sockaddr_storage is a valid value of this plain C struct.
        unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` and `len` are valid for writes of the sizes given.
    let r = unsafe {
        libc::getpeername(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    r == 0
}

/// `read(fd, buf)`, retried on `EINTR`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `send(fd, buf, MSG_NOSIGNAL)` on a socket (a pipe or file falls back to `write`),
/// retried on `EINTR`. A peer that went away is an error, never a `SIGPIPE`.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
        let mut r = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK) {
            // SAFETY: as above.
            r = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        }
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn poll_read_write_and_errors() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        assert!(!poll_one(fd, false, 0).unwrap());
        assert!(poll_one(fd, true, 0).unwrap());
        b.write_all(b"hi").unwrap();
        assert!(poll_one(fd, false, 1000).unwrap());
        let mut buf = [0u8; 8];
        assert_eq!(read(fd, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        assert_eq!(write(fd, b"yo").unwrap(), 2);
        assert_eq!(socket_error(fd).unwrap(), 0);
        assert!(has_peer(fd));
        let mut got = [0u8; 2];
        std::io::Read::read_exact(&mut b, &mut got).unwrap();
        assert_eq!(&got, b"yo");
        drop(b);
        assert_eq!(read(fd, &mut buf).unwrap(), 0);
        assert!(write(fd, b"x").is_err());
        assert!(poll_one(-1, false, 0).is_ok());
        assert!(read(-1, &mut buf).is_err());
    }

    #[test]
    fn epoll_ctl_on_raw_numbers() {
        use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollTimeout};
        use std::os::fd::AsFd;
        let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let epfd = ep.0.as_fd();
        epoll_ctl(epfd, EpollOp::Add, fd, libc::EPOLLIN as u32, 7).unwrap();
        assert!(epoll_ctl(epfd, EpollOp::Add, fd, libc::EPOLLIN as u32, 7).is_err());
        b.write_all(b"x").unwrap();
        let mut evs = [EpollEvent::empty(); 2];
        assert_eq!(ep.wait(&mut evs, EpollTimeout::from(1000u16)).unwrap(), 1);
        assert_eq!(evs[0].data(), 7);
        epoll_ctl(epfd, EpollOp::Delete, fd, 0, 0).unwrap();
        assert!(epoll_ctl(epfd, EpollOp::Delete, 12345, 0, 0).is_err());
    }
}
