//! The accept queue of a listening TCP socket, as the stats show it (`listen_queue`).
//!
//! Linux reports it through `TCP_INFO` on the listening socket: `tcpi_unacked` holds the
//! connections waiting to be accepted and `tcpi_sacked` the backlog the socket was given.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// (waiting, backlog) of the listening TCP socket `fd`. Fails for a socket that is no TCP
/// socket (a unix socket: its queue is not reported).
pub fn listen_queue(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // SAFETY: tcp_info is plain old data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the fd is borrowed for the call; `info` and `len` are valid, writable and
    // sized as the kernel is told (it writes at most `len` bytes and updates `len`).
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::addr_of_mut!(info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((info.tcpi_unacked, info.tcpi_sacked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn counts_unaccepted_connections() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (waiting, backlog) = listen_queue(l.as_fd()).unwrap();
        assert_eq!(waiting, 0);
        assert!(backlog > 0);
        let _a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _b = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert_eq!(listen_queue(l.as_fd()).unwrap().0, 2);
        let u = std::os::unix::net::UnixDatagram::unbound().unwrap();
        assert!(listen_queue(u.as_fd()).is_err());
    }
}
