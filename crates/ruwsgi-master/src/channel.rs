//! The command channel between the master and each child: one `AF_UNIX`/`SOCK_SEQPACKET`
//! socket pair per child process, made right before its fork.
//!
//! The master keeps its end (non-blocking, close-on-exec) in its fd registry as
//! `Watch::Channel(slot)`, closes it when the child is reaped and makes a new pair for the
//! respawn. The child adopts its end once, right after fork (`adopt_child_end`); its
//! language plugin's host reaches the master through [`request`], and its main loop may
//! watch [`child_channel`] for the master's end-of-file. Packets are
//! [`ruwsgi_proto::channel`] messages: one message per packet, so a reader never
//! reassembles.
//!
//! Design decision: SEQPACKET rather than a pipe or a stream socket keeps message
//! boundaries for free and reports the peer's exit as end-of-file in both directions; the
//! children's copies of each other's ends are closed right after fork, so that end-of-file
//! means exactly "that process is gone".

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use ruwsgi_proto::channel::{ChildRequest, DecodeError, MAX_MESSAGE};

/// Packets read from one channel per loop turn at most (a chatty child cannot starve the
/// loop; the rest is read on the next turn).
const MAX_PER_TURN: usize = 64;

/// The two ends of a fresh channel.
#[derive(Debug)]
pub(crate) struct Pair {
    /// The master's end: non-blocking.
    pub master: OwnedFd,
    /// The child's end: blocking (the child decides how it waits).
    pub child: OwnedFd,
}

/// A new channel, both ends close-on-exec.
pub(crate) fn pair() -> io::Result<Pair> {
    let (master, child) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok(Pair { master, child })
}

/// What the master read from a child's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// A valid request.
    Request(ChildRequest),
    /// A packet that did not decode (logged and dropped by the caller).
    Bad(DecodeError),
    /// End-of-file: the child is gone (or closed its end); stop watching.
    Closed,
}

/// Read every packet waiting on a non-blocking channel end (at most [`MAX_PER_TURN`]).
pub(crate) fn drain(fd: BorrowedFd<'_>) -> Vec<Received> {
    let mut out = Vec::new();
    // One byte more than the largest valid packet: a longer one shows as too long.
    let mut buf = [0u8; MAX_MESSAGE + 1];
    while out.len() < MAX_PER_TURN {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => {
                out.push(Received::Closed);
                break;
            }
            Ok(n) => out.push(match ChildRequest::decode(&buf[..n]) {
                Ok(r) => Received::Request(r),
                Err(e) => Received::Bad(e),
            }),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => break,
            Err(_) => {
                out.push(Received::Closed);
                break;
            }
        }
    }
    out
}

/// This process's end of its channel to the master; set once, in a child, right after fork.
/// The master itself never has one.
static CHILD_END: OnceLock<OwnedFd> = OnceLock::new();

/// In a freshly forked child: keep `fd` as this process's channel to the master.
pub(crate) fn adopt_child_end(fd: OwnedFd) {
    let _ = CHILD_END.set(fd);
}

/// This process's channel to the master (`None` in the master, or in a process the master
/// did not fork).
pub fn child_channel() -> Option<BorrowedFd<'static>> {
    CHILD_END.get().map(|fd| fd.as_fd())
}

/// Send `req` to the master over this process's channel. Fails with `NotConnected` in the
/// master (it has no channel), or with the socket's error (`EPIPE` once the master is gone).
pub fn request(req: ChildRequest) -> io::Result<()> {
    let fd = child_channel().ok_or(io::ErrorKind::NotConnected)?;
    send_request(fd, req)
}

/// Send `req` on `fd`, one packet, without `SIGPIPE`.
pub fn send_request(fd: BorrowedFd<'_>, req: ChildRequest) -> io::Result<()> {
    let packet = req.encode();
    loop {
        match send(fd.as_raw_fd(), packet.as_bytes(), MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cross_the_pair_one_packet_each() {
        let p = pair().unwrap();
        assert!(drain(p.master.as_fd()).is_empty());
        send_request(p.child.as_fd(), ChildRequest::ReloadMe).unwrap();
        send_request(p.child.as_fd(), ChildRequest::StopInstance).unwrap();
        nix::unistd::write(&p.child, b"garbage!").unwrap();
        nix::unistd::write(&p.child, &[0xC5; MAX_MESSAGE + 10]).unwrap();
        assert_eq!(
            drain(p.master.as_fd()),
            [
                Received::Request(ChildRequest::ReloadMe),
                Received::Request(ChildRequest::StopInstance),
                Received::Bad(DecodeError::BadMagic(b'g')),
                Received::Bad(DecodeError::TooLong {
                    len: MAX_MESSAGE + 1
                }),
            ]
        );
        drop(p.child);
        assert_eq!(drain(p.master.as_fd()), [Received::Closed]);
    }

    #[test]
    fn a_send_to_a_closed_master_fails_without_a_signal() {
        let p = pair().unwrap();
        drop(p.master);
        // Another test of this process may fork (and exec) meanwhile: its child holds a
        // copy of the master's end until its exec closes it, and a send succeeds while it
        // does. Bounded retries until the end is closed everywhere.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let err = loop {
            match send_request(p.child.as_fd(), ChildRequest::ReloadInstance) {
                Err(e) => break e,
                Ok(()) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(()) => panic!("a send to a closed master kept succeeding"),
            }
        };
        assert_eq!(err.raw_os_error(), Some(nix::errno::Errno::EPIPE as i32));
    }

    #[test]
    fn the_master_has_no_channel() {
        // Unit tests run in the "master" (nothing adopted a child end).
        assert!(child_channel().is_none());
        assert_eq!(
            request(ChildRequest::ReloadMe).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    }
}
