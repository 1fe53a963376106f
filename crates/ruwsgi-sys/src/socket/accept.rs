//! Accepting connections: one `accept4` call that also makes the socket non-blocking and
//! close-on-exec and returns the peer's address, so a new connection costs no extra
//! `fcntl`/`ioctl` or `getpeername`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Accept one pending connection on a listening socket. The new socket is non-blocking and
/// close-on-exec; the address is `None` for unix-socket peers.
pub fn accept_nonblocking(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, Option<SocketAddr>)> {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the fd is a live socket borrowed for the call; `storage` and `len` are valid,
    // writable and sized as the kernel is told.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::addr_of_mut!(storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 just returned this fd; nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((owned, peer_addr(&storage)))
}

fn peer_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let a: &libc::sockaddr_in = unsafe { &*std::ptr::from_ref(storage).cast() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*std::ptr::from_ref(storage).cast() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn accepts_with_peer_address_and_nonblocking() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (fd, peer) = accept_nonblocking(l.as_fd()).unwrap();
        assert_eq!(peer, Some(c.local_addr().unwrap()));
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert_ne!(flags & libc::O_NONBLOCK, 0);
        l.set_nonblocking(true).unwrap();
        let e = accept_nonblocking(l.as_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
